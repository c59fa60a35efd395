"""target-snowflake in-process under fakesnow, with the harness's extensions (test harness only).

target-snowflake has no host/port setting, so it cannot be pointed at a server; instead it runs under
fakesnow's patching of the Snowflake connector. Run by standins/target-snowflake-fakesnow as
`fakesnow -d <db dir> standins/target_snowflake_fakesnow.py --config <file>` (any target-snowflake arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fakesnow_ext

fakesnow_ext.install()

from target_snowflake.target import TargetSnowflake  # noqa: E402

TargetSnowflake.cli()

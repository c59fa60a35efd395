"""Regenerate the README's settings table from `tap-fullstory --about --format=markdown`.

The table between the markers is replaced; run `make readme` after changing a setting.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def main() -> int:
    about = subprocess.run(
        [sys.executable, "-m", "tap_fullstory.tap", "--about", "--format=markdown"],
        check=True, capture_output=True, text=True,
    ).stdout
    match = re.search(r"(\| Setting \|.*?)\n\n", about, re.S)
    if not match:
        print("no settings table in --about output", file=sys.stderr)
        return 1
    readme = Path("README.md")
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:start] + "\n" + match.group(1) + "\n" + text[end:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run SQL through redshift_connector and reflect tables with sqlalchemy-redshift, as target-redshift does.

Runs in .venv-redshift (the target's own client libraries), for tests/test_redshift.py. stdin: JSON
{"connect": {host, port, database, user, password, ssl}, "steps": [...]}, each step {"sql": "..."} or
{"reflect": [schema, table]} or {"url": "<sqlalchemy url>", "reflect": [...]}. stdout, last line: one result per
step, {"rows": [...]} / {"columns": [[name, type], ...]} or {"error": "..."}.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    doc = json.loads(sys.stdin.read())
    import redshift_connector
    import sqlalchemy as sa

    out: list[dict[str, Any]] = []
    try:
        con = redshift_connector.connect(**doc["connect"])
    except Exception as exc:  # the start-up itself is under test
        print(json.dumps([{"error": str(exc)}]))
        return
    con.autocommit = True
    cur = con.cursor()
    c = doc["connect"]
    url = (f"redshift+redshift_connector://{c['user']}:{c['password']}@{c['host']}:{c['port']}/{c['database']}")
    for step in doc["steps"]:
        try:
            if "reflect" in step:
                engine = sa.create_engine(step.get("url", url))
                schema, table = step["reflect"]
                cols = sa.inspect(engine).get_columns(table, schema=schema)
                out.append({"columns": [[col["name"], str(col["type"])] for col in cols]})
            else:
                cur.execute(step["sql"])
                rows = cur.fetchall() if cur.description else []
                out.append({"rows": [[v if isinstance(v, (int, float, str, type(None))) else str(v) for v in r]
                                     for r in rows]})
        except Exception as exc:
            out.append({"error": str(exc)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()

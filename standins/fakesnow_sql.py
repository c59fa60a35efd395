"""Run Snowflake SQL through the Snowflake connector under fakesnow, JSON in and out (test harness only).

The tests run in the tap's venv, fakesnow in .venv-snowflake (it needs snowflake-connector-python 4.x), so the tests
send their statements here:

  .venv-snowflake/bin/python standins/fakesnow_sql.py [--no-ext] [--db DIR] < steps.json

steps.json is a list; each step is a SQL string (run on the current connection) or {"connect": {...}} (open a new
connection with these snowflake.connector.connect arguments, e.g. database/schema). Without --db the databases are
in memory. Prints one JSON line, one entry per step (so step i's result is entry i): {"connected": true}, or per SQL step
{"rows": [[...], ...]} or {"error": "<message>"}; values that are
not JSON (datetimes, decimals) are printed as str. --no-ext runs plain fakesnow, without standins/fakesnow_ext.py.
"""

import argparse
import json
import sys
from pathlib import Path

import fakesnow
import snowflake.connector


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-ext", action="store_true", help="plain fakesnow, without the harness's extensions")
    parser.add_argument("--db", help="fakesnow database directory (default: in memory)")
    args = parser.parse_args()
    if not args.no_ext:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import fakesnow_ext

        fakesnow_ext.install()
    steps = json.load(sys.stdin)
    out: list[dict] = []
    with fakesnow.patch(db_path=args.db):
        cur = None
        for step in steps:
            if isinstance(step, dict):
                cur = snowflake.connector.connect(**step["connect"]).cursor()
                out.append({"connected": True})
                continue
            if cur is None:
                cur = snowflake.connector.connect().cursor()
            try:
                cur.execute(step)
                out.append({"rows": [list(r) for r in cur.fetchall()]})
            except Exception as e:  # reported per statement: the tests assert on the errors too
                out.append({"error": f"{type(e).__name__}: {e}"})
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

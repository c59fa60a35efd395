"""`dbt compile` for a warehouse that cannot be reached from here (Redshift): a test stand-in.

Runs dbt in-process with the warehouse's real adapter (its SQL macros, dispatch and type names) but with the
adapter's few introspective calls answered locally instead of by a server:
  - every relation exists, as a table (so `is_incremental()` is true and the incremental branch renders);
  - a query returns one row holding 2024-01-03 00:00:00 (the incremental cutoff renders as a literal);
  - the relation cache is not populated and no connection is opened.
Then each compiled model is parsed with sqlglot in the warehouse's dialect, so a syntax the warehouse would reject
fails here. It does not prove the SQL runs: only a run on the warehouse does (docs/models.md says which ran).

usage: python standins/dbt_offline_compile.py redshift <project dir> <profiles dir> <target path>
(BigQuery does not work this way: its adapter asks Google for a token before compiling, and hangs offline.)
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path


def main() -> int:
    warehouse, project, profiles, target_path = sys.argv[1:5]
    import agate
    import sqlglot
    from dbt.adapters.base.impl import BaseAdapter
    from dbt.adapters.contracts.connection import AdapterResponse
    from dbt.cli.main import dbtRunner

    def get_relation(self, database, schema, identifier):  # every relation exists, as a table
        return self.Relation.create(database=database, schema=schema, identifier=identifier, type="table")

    def execute(self, sql, auto_begin=False, fetch=False, limit=None):
        table = agate.Table([[dt.datetime(2024, 1, 3)]], ["value"], [agate.DateTime()])
        return AdapterResponse(_message="offline"), table

    BaseAdapter.get_relation = get_relation
    BaseAdapter.execute = execute
    BaseAdapter.set_relations_cache = lambda self, *a, **k: None
    res = dbtRunner().invoke(["compile", "--no-populate-cache", "--project-dir", project, "--profiles-dir",
                              profiles, "--target-path", target_path, "--select", "fullstory"])
    if not res.success:
        print(f"dbt compile failed: {res.exception}", file=sys.stderr)
        return 1
    compiled = sorted((Path(project) / target_path / "compiled").rglob("models/**/*.sql"))
    dialect = {"redshift": "redshift"}[warehouse]
    for path in compiled:
        sqlglot.parse_one(path.read_text(), read=dialect)  # raises on a syntax error
    incremental = sum("cast('2024-01-0" in p.read_text() for p in compiled)
    print(f"{warehouse}: {len(compiled)} compiled models and tests parsed as {dialect} SQL "
          f"({incremental} with an incremental cutoff)")
    return 0 if compiled and incremental else 1


if __name__ == "__main__":
    sys.exit(main())

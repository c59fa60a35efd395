"""Redshift's system catalogue on PostgreSQL 15, for the stand-in.

sqlalchemy-redshift reflects tables with queries PostgreSQL cannot run: they read Redshift-only columns
(`attencodingtype`, `attisdistkey`, `reldiststyle`), Redshift views (`svv_external_*`), the function
`pg_get_late_binding_view_cols()`, `WHERE 1`, and output aliases in WHERE. Each is recognised by what only it
contains and answered by a PostgreSQL query with the same columns, typed as Redshift reports them (`super` for
SUPER). `SETUP_SQL` adds the Redshift functions the documentation's queries use.
"""

from __future__ import annotations

import re

# Installed once per database (idempotent). json_serialize/json_parse/json_extract_path_text work as Redshift's:
# SUPER <-> JSON text, and a path lookup in JSON text (PostgreSQL's own takes json, not text).
SETUP_SQL = """
CREATE OR REPLACE FUNCTION public.json_serialize(jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text';
CREATE OR REPLACE FUNCTION public.json_parse(text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS 'SELECT $1::jsonb';
CREATE OR REPLACE FUNCTION public.json_extract_path_text(text, VARIADIC text[]) RETURNS text
  LANGUAGE sql IMMUTABLE AS 'SELECT pg_catalog.json_extract_path_text($1::json, VARIADIC $2)';
"""

REDSHIFT_VERSION = ("PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 "
                    "(Red Hat 3.4.2-6.fc3), Redshift 1.0.0 (tap-fullstory stand-in on PostgreSQL 15)")

# format_type() as Redshift prints it: SUPER for our jsonb columns.
_TYPE = ("CASE WHEN att.atttypid = 'jsonb'::regtype THEN 'super' "
         "ELSE pg_catalog.format_type(att.atttypid, att.atttypmod) END")

_COLUMNS = f"""
SELECT n.nspname AS "schema", c.relname AS "table_name", att.attname AS "name", 'none'::text AS "encode",
  {_TYPE} AS "type", false AS "distkey", 0 AS "sortkey", att.attnotnull AS "notnull",
  pg_catalog.col_description(att.attrelid, att.attnum) AS "comment", NULL::text AS "adsrc", att.attnum AS "attnum",
  {_TYPE} AS "format_type", pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS "default",
  n.oid AS "schema_oid", c.oid AS "table_oid"
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid
LEFT JOIN pg_catalog.pg_attrdef ad ON (att.attrelid, att.attnum) = (ad.adrelid, ad.adnum)
WHERE n.nspname !~ '^pg_' AND att.attnum > 0 AND NOT att.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p')
  {{where}}
ORDER BY "schema", "table_name", "attnum"
"""

_RELATIONS = """
SELECT c.relkind, n.oid AS "schema_oid", n.nspname AS "schema", c.oid AS "rel_oid", c.relname,
  'EVEN'::text AS "diststyle", c.relowner AS "owner_id", u.usename AS "owner_name",
  TRIM(TRAILING ';' FROM pg_catalog.pg_get_viewdef(c.oid, true)) AS "view_definition",
  pg_catalog.array_to_string(c.relacl, E'\\n') AS "privileges"
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_user u ON u.usesysid = c.relowner
WHERE c.relkind IN ('r', 'v', 'm', 'S', 'f') AND n.nspname !~ '^pg_' {where}
ORDER BY "relkind", "schema_oid", "schema"
"""

_CONSTRAINTS = """
SELECT n.nspname AS "schema", c.relname AS "table_name", t.contype, t.conname, t.conkey, a.attnum, a.attname,
  pg_catalog.pg_get_constraintdef(t.oid, true)::varchar(512) AS condef, n.oid AS "schema_oid", c.oid AS "rel_oid"
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_constraint t ON t.conrelid = c.oid
JOIN pg_catalog.pg_attribute a ON t.conrelid = a.attrelid AND a.attnum = ANY(t.conkey)
WHERE n.nspname !~ '^pg_' AND t.contype <> 'c' {where}
ORDER BY "schema", "table_name"
"""

# The stand-in's byte-length checks (VARCHAR(n) counts bytes) are CHECK constraints; Redshift has none.
BYTES_CHECK_PREFIX = "rs_bytes_"

_SCHEMA = re.compile(r"\bAND\s+(?:schema|n\.nspname)\s*=\s*'((?:[^']|'')*)'", re.I)
_TABLE = re.compile(r"\bAND\s+(?:table_name|relname|c\.relname)\s*=\s*'((?:[^']|'')*)'", re.I)


def _where(sql: str) -> str:
    where = ""
    if m := _SCHEMA.search(sql):
        where += f" AND n.nspname = '{m.group(1)}'"
    if m := _TABLE.search(sql):
        where += f" AND c.relname = '{m.group(1)}'"
    return where


def rewrite_catalog_query(sql: str) -> str | None:
    """The PostgreSQL equivalent of a sqlalchemy-redshift catalogue query, or None if `sql` is not one."""
    if "pg_get_late_binding_view_cols" in sql:
        return _COLUMNS.format(where=_where(sql))
    if "svv_external_tables" in sql and "relkind" in sql:
        return _RELATIONS.format(where=_where(sql))
    if "svv_external_columns" in sql and "contype" in sql:
        return _CONSTRAINTS.format(where=_where(sql))
    if "pg_constraint" in sql and "contype = 'c'" in sql:  # get_check_constraints: hide the byte checks
        return sql.replace("cons.contype = 'c'",
                           f"cons.contype = 'c' AND cons.conname NOT LIKE '{BYTES_CHECK_PREFIX}%'")
    return None

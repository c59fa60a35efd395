"""Extensions to fakesnow 0.12.x for the staging statements target-snowflake 0.20.x sends (test harness only).

fakesnow (a Snowflake stand-in on DuckDB) lacks a few statements meltanolabs-target-snowflake needs. Each
extension below does what Snowflake documents for the statement; nothing is made to succeed without doing its
work, and everything else still fails as fakesnow fails. `install()` applies them to the imported fakesnow
modules (in-process patches; nothing on disk is edited).

1. quoted_stage_location -- a stage location in single quotes ('@~/dir', '@st/dir') is the same location as
   the unquoted one (Snowflake allows quotes around any stage path), in PUT and in FROM of COPY/SELECT.
2. user_stage -- `@~`, the current user's stage, always exists without CREATE STAGE: PUT stores files in it,
   LIST lists them and COPY INTO reads them; it needs no current database or schema (fakesnow has no users:
   every connection shares one user stage).
3. remove -- `REMOVE|RM <stage>[/path]` deletes the staged files whose path starts with <path> and returns
   one (name, result) row per file, like Snowflake; PATTERN and external stages are refused.
4. copy_transform -- COPY INTO t (cols) FROM (SELECT $1:"k"::type ... FROM @stage): for JSON files $1 is the
   whole JSON document of a row, so $1:"k" reads its element k; for Parquet files $1:"k" is column k, and NULL
   in a file without that column (fakesnow read $1:"k" as a column k of the file, which JSON files never have
   and a Parquet file may not: "Binder Error: Column ... cannot be referenced").
5. drop_file_format -- `DROP FILE FORMAT [IF EXISTS] name` deletes the format CREATE FILE FORMAT recorded
   (fakesnow: "Parser Error: syntax error at or near FILE"); a missing one is an error without IF EXISTS.
6. select_from_stage -- a query over staged files, `SELECT $1:"k"::type ... FROM @stage/path
   (file_format => fmt)` (JSON or Parquet), as in target-snowflake's MERGE ... USING (SELECT ... QUALIFY
   ROW_NUMBER() OVER (... ORDER BY SEQ8() DESC) = 1): the FROM reads the files under the path in stage order,
   $1 is each row (JSON: the document; Parquet: its columns by name, NULL for a name the files lack) and SEQ8()
   numbers the rows in that order.
7. merge_without_current_schema -- MERGE of qualified tables needs no current schema in Snowflake; fakesnow's
   MERGE (a temporary table merge_candidates + UPDATE/INSERT) asserted one in its load-history bookkeeping
   (bare `AssertionError` when the session has a database but no schema, as target-snowflake's has).
8. put_compressed_source -- PUT (AUTO_COMPRESS, SOURCE_COMPRESSION = AUTO_DETECT) stores a source that is
   already compressed as it is, detecting it like the Snowflake connector does (Parquet by its PAR1 magic);
   fakesnow gzipped every file not named *.gz, so a staged Parquet file became unreadable *.parquet.gz.
"""

from __future__ import annotations

import mimetypes
import os
import re
from typing import Any

import fakesnow.checks as checks
import fakesnow.copy_into as copy_into
import fakesnow.cursor as cursor
import fakesnow.transforms.stage as stage
import pyarrow.parquet as pq
import snowflake.connector.errors
import sqlglot
from sqlglot import exp

# Storage name of the user stage, in fakesnow's "<catalog>.<schema>.<stage>" form. No real stage can have it:
# "~" is not a valid stage name.
USER_STAGE = "_FS_USER._FS_USER.~"


# --- 1. quoted stage locations --------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    """'@~/a' -> @~/a (a Snowflake string literal; '' is an escaped quote)."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def quoted_stage_location(expression: exp.Expr) -> exp.Expr:
    """Rewrite quoted stage locations to the unquoted form fakesnow parses."""
    if isinstance(expression, exp.Put) and isinstance(target := expression.args.get("target"), exp.Var):
        target.set("this", _unquote(target.name))
    for table in expression.find_all(exp.Table):
        this = table.this
        if isinstance(this, exp.Literal) and this.is_string and this.name.startswith("@"):
            table.set("this", exp.Var(this=this.name))
    return expression


# --- 2. the user stage @~ ---------------------------------------------------------------------------------------


def _is_user_stage(var: str) -> bool:
    return var == "~"


def _patch_user_stage() -> None:
    parts_from_var = stage.parts_from_var
    stage_lookup_sql = stage.stage_lookup_sql
    stage_url_from_var = copy_into.stage_url_from_var

    def parts(var: str, current_database: str | None, current_schema: str | None) -> tuple[str, str, str]:
        if _is_user_stage(var):
            return tuple(USER_STAGE.split("."))  # type: ignore[return-value]
        return parts_from_var(var, current_database, current_schema)

    def lookup_sql(catalog: str, schema: str, stage_name: str, table_stages: Any) -> str:
        if f"{catalog}.{schema}.{stage_name}" == USER_STAGE:
            return f"SELECT '{USER_STAGE}' AS storage_name"  # the user stage always exists
        return stage_lookup_sql(catalog, schema, stage_name, table_stages)

    def url_from_var(var: str, *args: Any, **kwargs: Any) -> str:
        stage_var, _, path = var.partition("/")
        if _is_user_stage(stage_var):
            url = stage.internal_dir(USER_STAGE)
            return f"{url.rstrip('/')}/{path}" if path else url
        return stage_url_from_var(var, *args, **kwargs)

    missing_qualifiers = checks._missing_qualifiers

    def qualifiers(node: exp.Table) -> tuple[bool, bool]:
        if isinstance(node.this, exp.Var) and _is_user_stage(node.this.name[1:].partition("/")[0]):
            return False, False  # @~ is in no database or schema
        return missing_qualifiers(node)

    checks._missing_qualifiers = qualifiers
    stage.parts_from_var = parts
    stage.stage_lookup_sql = lookup_sql
    copy_into.stage_url_from_var = url_from_var


# --- 3. REMOVE ----------------------------------------------------------------------------------------------------

_REMOVE = re.compile(r"^\s*(?:remove|rm)\s+('(?:[^']|'')*'|@\S+)\s*(.*?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)


def _stage_prefix(cur: Any, location: str) -> tuple[str, str]:
    """(stage root directory, path prefix of the files) of an internal stage location such as @~/dir/."""
    if not location.startswith("@"):
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"SQL compilation error:\n{location} does not start with @", errno=1003, sqlstate="42000")
    var, _, path = location[1:].partition("/")
    conn = cur._conn
    catalog, schema, name = stage.parts_from_var(var, conn.database, conn.schema)
    row = cur._duck_conn.execute(stage.stage_lookup_sql(catalog, schema, name, conn.table_stages)).fetchone()
    if row is None:
        raise stage.not_found_error(f"{catalog}.{schema}.{name}")
    if not stage.is_table_stage(name) and row[0] != USER_STAGE:
        url = cur._duck_conn.execute(
            "SELECT url FROM _fs_global._fs_information_schema._fs_stages "
            "WHERE database_name = ? AND schema_name = ? AND name = ?", [catalog, schema, name]).fetchone()
        if url and url[0]:
            raise NotImplementedError("REMOVE from an external stage")
    return stage.internal_dir(row[0]), path


def remove(cur: Any, command: str) -> str | None:
    """Delete the files of a REMOVE statement; return the SELECT that yields its result (None: not REMOVE)."""
    m = _REMOVE.match(command)
    if not m:
        return None
    if m.group(2):
        raise NotImplementedError(f"REMOVE option {m.group(2)!r}")
    root, path = _stage_prefix(cur, _unquote(m.group(1)))
    prefix = os.path.join(root, path)
    removed = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            full = os.path.join(dirpath, f)
            if full.startswith(prefix):
                os.remove(full)
                removed.append(os.path.relpath(full, root))
    rows = sorted(removed)
    if not rows:
        return "SELECT NULL::VARCHAR AS \"name\", NULL::VARCHAR AS \"result\" WHERE FALSE"
    values = exp.values([(n, "removed") for n in rows], alias="t", columns=["name", "result"])
    return exp.select('"name"', '"result"').from_(values).sql(dialect="snowflake")


# --- 4. COPY INTO ... FROM (SELECT $1:"k"::type FROM @stage) of JSON files ------------------------------------

# read_json_objects(), fakesnow's reader of JSON stage files, yields each document as one JSON column "json".
_JSON_DOCUMENT = exp.Column(this=exp.Identifier(this="json", quoted=True))


def _parquet_elements(select: exp.Expr, columns: set[str]) -> None:
    """In place: $1:"k" of a Parquet row -> column k, or NULL when the file has no column k (Snowflake)."""
    for p in list(select.find_all(exp.Parameter)):
        if p.this.name != "1":
            continue
        # $1:"k", or what fakesnow's casts made of it ($1 ->> '$.k')
        path = p.parent.expression if isinstance(p.parent, (exp.JSONExtract, exp.JSONExtractScalar)) else None
        keys = list(path.find_all(exp.JSONPathKey)) if path is not None else []
        if len(keys) != 1 or len(path.expressions) != 2:  # [root, key]
            raise NotImplementedError("$1 of a Parquet file other than $1:<column>")
        key = keys[0]
        p.parent.replace(exp.column(key.this, quoted=True) if key.this in columns else exp.Null())


def _patch_copy_transform() -> None:
    inserts = copy_into._inserts

    def transform_inserts(expr: exp.Copy, params: Any, urls: list[str], parquet_info: Any = None) -> list[exp.Expr]:
        from_ = expr.args["files"][0]
        if isinstance(params.file_format, copy_into.ReadJSON) and isinstance(from_, exp.Subquery):
            for p in list(from_.find_all(exp.Parameter)):
                if p.this.name == "1":
                    p.replace(_JSON_DOCUMENT.copy())
        elif isinstance(params.file_format, copy_into.ReadParquet) and isinstance(from_, exp.Subquery):
            out = []
            for url in urls:  # per file: each file has its own columns
                one = expr.copy()
                _parquet_elements(one.args["files"][0], set(pq.read_schema(stage.file_path(url)).names))
                out += inserts(one, params, [url], parquet_info)
            return out
        return inserts(expr, params, urls, parquet_info)

    copy_into._inserts = transform_inserts


# --- 5. DROP FILE FORMAT -----------------------------------------------------------------------------------------


def _name(ident: Any, default: str | None) -> str | None:
    """Snowflake identifier resolution: quoted keeps its case, unquoted is upper-cased."""
    if not isinstance(ident, exp.Identifier):
        return default
    return ident.this if ident.quoted else ident.this.upper()


def drop_file_format(cur: Any, command: str) -> str | None:
    """Delete the named file format; return the SELECT that yields the result (None: another statement)."""
    if not re.match(r"^\s*drop\s+file\s+format\b", command, re.IGNORECASE):
        return None
    drop = sqlglot.parse_one(command, read="snowflake")
    table = drop.find(exp.Table)
    assert isinstance(drop, exp.Drop) and table is not None, command
    name = _name(table.this, None)
    catalog = _name(table.args.get("catalog"), cur._conn.database)
    schema = _name(table.args.get("db"), cur._conn.schema)
    with cur._duck_conn.cursor() as meta:  # like CREATE FILE FORMAT: outside the caller's transaction
        (deleted,) = meta.execute(
            "DELETE FROM _fs_global._fs_information_schema._fs_file_formats "
            "WHERE name = ? AND database_name = ? AND schema_name = ?", [name, catalog, schema]).fetchone()
    if not deleted and not drop.args.get("exists"):
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"SQL compilation error:\nFile format '{catalog}.{schema}.{name}' does not exist or not authorized.",
            errno=2003, sqlstate="02000")
    status = f"{name} successfully dropped." if deleted else f"Drop statement executed successfully ({name} already dropped)."
    return exp.select(exp.alias_(exp.Literal.string(status), "status", quoted=True)).sql(dialect="snowflake")


# --- 6. SELECT ... FROM @stage/path (file_format => fmt) ----------------------------------------------------------

_SEQ = "_fs_seq"


def _stage_reader(cur: Any, table: exp.Table) -> tuple[exp.Table, str, set[str]]:
    """A DuckDB table function reading the staged files of `table`, numbered in order; the file type; and
    (Parquet) the files' column names."""
    conn, duck = cur._conn, cur._duck_conn
    fmt = table.args["format"]
    fmt_name = fmt.sql(dialect="snowflake") if isinstance(fmt, exp.Expr) else str(fmt)
    file_type = str(copy_into.lookup_file_format(duck, fmt_name, conn.database, conn.schema).get("TYPE", "CSV"))
    source = copy_into.stage_url_from_var(table.this.name[1:], duck, conn.database, conn.schema,
                                          conn.table_stages, exp.Table(this=exp.Identifier(this="")))
    urls = sorted(copy_into._source_glob(source, duck))
    if not urls:  # Snowflake: a query over no files returns no rows; DuckDB cannot read an empty file list
        raise NotImplementedError("a query over staged files that match no file")
    files = exp.Array(expressions=[exp.Literal.string(stage.file_path(u)) for u in urls])
    if file_type.upper() == "JSON":
        reader, columns = exp.Anonymous(this="read_json_objects", expressions=[files]), ["json", _SEQ]
    elif file_type.upper() == "PARQUET":
        reader, columns = exp.Anonymous(this="read_parquet", expressions=[files]), []
    else:
        raise NotImplementedError(f"a query over staged {file_type} files")
    alias = exp.TableAlias(this=exp.to_identifier("_fs_stage", quoted=True),
                           columns=[exp.to_identifier(c, quoted=True) for c in columns])
    names: set[str] = set()
    if file_type.upper() == "PARQUET":
        names = {r[0] for r in duck.execute(f"DESCRIBE SELECT * FROM {reader.sql(dialect='duckdb')}").fetchall()}
    return exp.Table(this=reader, ordinality=True, alias=alias), file_type.upper(), names


def select_from_stage(cur: Any, expression: exp.Expr) -> exp.Expr:
    """Rewrite every SELECT whose FROM is a stage location with a file format to read the staged files."""
    for table in list(expression.find_all(exp.Table)):
        if not (isinstance(table.this, exp.Var) and table.this.name.startswith("@") and table.args.get("format")):
            continue
        select = table.find_ancestor(exp.Select)
        assert select is not None, expression
        reader, file_type, names = _stage_reader(cur, table)
        if file_type == "JSON":
            for p in list(select.find_all(exp.Parameter)):
                if p.this.name == "1":
                    p.replace(_JSON_DOCUMENT.copy())
        else:
            _parquet_elements(select, names)
        seq = exp.column(_SEQ, quoted=True) if file_type == "JSON" else exp.column("ordinality", quoted=True)
        for s8 in list(select.find_all(exp.Seq8)):
            s8.replace(exp.column(_SEQ, quoted=True))
        table.replace(reader)
        if (qualify := select.args.get("qualify")) is not None:
            # Snowflake's QUALIFY may name the SELECT's aliases (DuckDB would bind them to an outer query):
            # filter in an outer SELECT over the rows, which carry their file order as _fs_seq.
            aliases = [exp.to_identifier(e.alias_or_name, quoted=True) for e in select.expressions]
            select.set("qualify", None)
            select.select(exp.alias_(seq, _SEQ, quoted=True), copy=False)
            outer = exp.select(*[exp.Column(this=a) for a in aliases]).from_(select.copy().subquery("_fs_rows"))
            outer.set("qualify", qualify)
            if select is expression:
                expression = outer
            else:
                select.replace(outer)
    return expression


# --- 7. MERGE without a current schema -----------------------------------------------------------------------------


def _patch_merge_without_current_schema() -> None:
    execute = cursor.FakeSnowflakeCursor._execute

    def _execute(self: Any, transformed: exp.Expr, *args: Any, **kwargs: Any) -> Any:
        table = transformed.find(exp.Table) if isinstance(transformed, exp.Create) else None
        if not (self._conn.schema is None and table is not None and table.name.upper() == "MERGE_CANDIDATES"
                and transformed.find(exp.TemporaryProperty)):
            return execute(self, transformed, *args, **kwargs)
        self._conn._schema = "MAIN"  # the DuckDB schema fakesnow uses for a session without one
        try:
            return execute(self, transformed, *args, **kwargs)
        finally:
            self._conn._schema = None

    cursor.FakeSnowflakeCursor._execute = _execute


# --- 8. PUT of an already compressed source ------------------------------------------------------------------------


def _detected_compression(path: str) -> str | None:
    """The connector's source compression detection (file_transfer_agent: mimetypes, then magic bytes)."""
    _, encoding = mimetypes.guess_type(path)
    if encoding is not None:
        return encoding.upper()
    with open(path, "rb") as f:
        head = f.read(4)
    if path.endswith(".br"):
        return "BROTLI"
    if head[:3] == b"ORC":
        return "ORC"
    if head == b"PAR1":
        return "PARQUET"
    if head == bytes.fromhex("28b52ffd"):
        return "ZSTD"
    return None


def _patch_put_compressed_source() -> None:
    upload_files = stage.upload_files

    def upload(data: Any) -> list[dict[str, Any]]:
        results = []
        for src in data["src_locations"]:
            found = _detected_compression(src)
            one = {**data, "src_locations": [src], "autoCompress": data["autoCompress"] and found is None}
            for r in upload_files(one):
                if found is not None:
                    r["source_compression"] = r["target_compression"] = found
                results.append(r)
        return results

    stage.upload_files = upload


# --- install ------------------------------------------------------------------------------------------------------

_installed = False


def install() -> None:
    """Apply every extension (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True

    parse_one = cursor.parse_one
    cursor.parse_one = lambda sql, *a, **kw: quoted_stage_location(parse_one(sql, *a, **kw))

    _patch_user_stage()
    _patch_copy_transform()
    _patch_merge_without_current_schema()
    _patch_put_compressed_source()

    explode = cursor.FakeSnowflakeCursor._transform_explode
    cursor.FakeSnowflakeCursor._transform_explode = lambda self, e: explode(self, select_from_stage(self, e))

    execute = cursor.FakeSnowflakeCursor.execute

    def execute_extended(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result_sql = None
            for handler in (remove, drop_file_format):
                if isinstance(command, str) and (result_sql := handler(self, command)) is not None:
                    break
        except NotImplementedError as e:  # reported like fakesnow's own gaps
            raise snowflake.connector.errors.ProgrammingError(msg=f"{e} not implemented", errno=9999,
                                                              sqlstate="99999") from e
        if result_sql is not None:
            return execute(self, result_sql)
        return execute(self, command, *args, **kwargs)

    cursor.FakeSnowflakeCursor.execute = execute_extended

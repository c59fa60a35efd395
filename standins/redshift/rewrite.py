"""Redshift SQL -> PostgreSQL 15 SQL, statement by statement, doing what Redshift documents.

- identifiers: quoted identifiers fold to lower case, as Redshift's do unless the session ran
  `SET enable_case_sensitive_identifier TO true`;
- types: SUPER is jsonb; VARCHAR(n) counts BYTES (a CHECK on octet_length; PostgreSQL counts characters),
  VARCHAR without a length is VARCHAR(256), VARCHAR(MAX) is VARCHAR(65535), more than 65535 is an error;
- `MERGE INTO t USING s ON c REMOVE DUPLICATES` (Redshift's simplified MERGE) updates every column of the
  matched rows and inserts the others;
- SUPER navigation `col.key[.key...]` in queries reads the value at that path (as text);
- `version()` reports Redshift's version string; sqlalchemy-redshift's catalogue queries -> catalog.py;
- `COPY t (cols) FROM 's3://...'` becomes `COPY ... FROM STDIN` plus a CopySpec the session feeds (copy_s3.py).

A statement the stand-in refuses becomes a statement that raises the error in PostgreSQL, so the client sees
it in protocol order, like any other error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from standins.redshift import catalog
from standins.redshift.copy_s3 import CopySpec, parse_copy
from standins.redshift.sqltext import (
    Tok,
    join,
    literal,
    quote_ident,
    significant,
    split_top_level,
    tokens,
)

Columns = list[tuple[str, str]]  # (name, PostgreSQL format_type)

VARCHAR_MAX = 65535
DEFAULT_VARCHAR = 256


class RedshiftError(Exception):
    """An error Redshift would raise for this statement."""

    def __init__(self, message: str, sqlstate: str = "42601") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass
class Context:
    """What a rewrite may know about the session: its settings, its temp tables, the catalogue."""

    table_columns: Callable[[str], Columns]  # permanent tables, by reference as written
    super_columns: Callable[[], set[str]]
    case_sensitive: bool = False
    # Tables this session created, by reference without quotes: its temp tables, which no other session
    # sees, and tables its open transaction has not committed yet.
    tables: dict[str, Columns] = field(default_factory=dict)

    def columns(self, ref: str) -> Columns:
        return self.tables.get(_key(ref)) or self.table_columns(ref)


def _key(ref: str) -> str:
    return ref.replace('"', "").strip()


@dataclass
class Rewritten:
    sql: str
    copy: CopySpec | None = None


def error_sql(err: RedshiftError) -> str:
    msg = str(err).replace("$", "")
    return f"DO $rs$ BEGIN RAISE EXCEPTION USING MESSAGE = {literal(msg)}, ERRCODE = '{err.sqlstate}'; END $rs$"


def rewrite(sql: str, ctx: Context) -> Rewritten:
    try:
        return _rewrite(sql, ctx)
    except RedshiftError as err:
        return Rewritten(error_sql(err))


def _rewrite(sql: str, ctx: Context) -> Rewritten:
    if (catalog_sql := catalog.rewrite_catalog_query(sql)) is not None:
        return Rewritten(catalog_sql)
    toks = tokens(sql)
    sig = significant(toks)
    first = [t.text.upper() for t in sig[:4] if t.kind == "word"]
    if first[:2] == ["SET", "ENABLE_CASE_SENSITIVE_IDENTIFIER"]:
        value = sig[-1].text.strip("'").lower()
        ctx.case_sensitive = value in ("true", "on")
        return Rewritten(f"SET rs.enable_case_sensitive_identifier TO {literal(value)}")
    toks = _fold(toks, ctx.case_sensitive)
    toks = _types_and_version(toks)
    sig = significant(toks)
    head = first[0] if first else ""
    if head == "COPY":
        spec = parse_copy(sig, ctx)
        if spec is not None:
            return Rewritten(spec.stdin_sql(), spec)
    if head == "CREATE" and "TABLE" in first:
        return Rewritten(_create_table(toks, ctx))
    if head == "ALTER" and "ADD" in [t.text.upper() for t in sig if t.kind == "word"]:
        return Rewritten(_alter_add(toks, ctx))
    if head == "MERGE" and [t.text.upper() for t in sig[-2:]] == ["REMOVE", "DUPLICATES"]:
        return Rewritten(_merge(sig, ctx))
    if head in ("SELECT", "WITH"):
        return Rewritten(join(_navigate(toks, ctx)))
    return Rewritten(join(toks))


def _fold(toks: list[Tok], case_sensitive: bool) -> list[Tok]:
    if case_sensitive:
        return toks
    return [Tok("qid", quote_ident(t.name.lower())) if t.kind == "qid" else t for t in toks]


# Redshift type names PostgreSQL lacks.
TYPE_ALIASES = {"SUPER": "jsonb", "DATETIME": "timestamp"}


def _types_and_version(toks: list[Tok]) -> list[Tok]:
    """SUPER -> jsonb, DATETIME -> timestamp; [pg_catalog.]version() -> Redshift's version string."""
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "word" and t.text.upper() in TYPE_ALIASES:
            out.append(Tok("word", TYPE_ALIASES[t.text.upper()]))
        elif t.kind == "word" and t.text.lower() == "version" and join(toks[i + 1:i + 3]).replace(" ", "") == "()":
            if len(out) >= 2 and out[-1].text == "." and out[-2].text.lower() == "pg_catalog":
                del out[-2:]
            out.append(Tok("other", literal(catalog.REDSHIFT_VERSION) + "::varchar"))
            i += 2
        else:
            out.append(t)
        i += 1
    return out


# --- DDL ------------------------------------------------------------------------------------------------------------

_STOP = {"NOT", "NULL", "DEFAULT", "PRIMARY", "UNIQUE", "CHECK", "REFERENCES", "ENCODE", "DISTKEY", "SORTKEY",
         "IDENTITY", "GENERATED", "COLLATE", "CONSTRAINT"}
_CHAR_TYPES = {"VARCHAR": "varchar", "NVARCHAR": "varchar", "TEXT": "varchar", "CHARACTER VARYING": "varchar",
               "CHAR": "char", "CHARACTER": "char", "NCHAR": "char", "BPCHAR": "char"}


def _column_def(item: list[Tok]) -> tuple[str, str, str, int | None]:
    """(quoted name, rewritten definition, format_type, byte limit) of one column definition."""
    sig = significant(item)
    name = sig[0].name
    i, type_words, args = 1, [], ""
    while i < len(sig) and sig[i].kind == "word" and sig[i].text.upper() not in _STOP:
        type_words.append(sig[i].text.upper())
        i += 1
    if i < len(sig) and sig[i].text == "(":
        depth, j = 0, i
        while j < len(sig):
            depth += {"(": 1, ")": -1}.get(sig[j].text, 0)
            if depth == 0:
                break
            j += 1
        args = join(sig[i + 1:j]).strip()
        i = j + 1
    rest = " ".join(t.text for t in sig[i:])
    type_name = " ".join(type_words)
    qname = quote_ident(name)
    kind = _CHAR_TYPES.get(type_name)
    if kind is None:
        text = type_name + (f"({args})" if args else "")
        pg_type = "jsonb" if type_name == "JSONB" else text.lower()
        return qname, f"{qname} {text} {rest}".strip(), pg_type, None
    if args.upper() == "MAX":
        n = VARCHAR_MAX
    elif args:
        n = int(args)
    else:
        n = DEFAULT_VARCHAR if kind == "varchar" else 1
    limit = VARCHAR_MAX if kind == "varchar" else 4096
    if n > limit:
        raise RedshiftError(f"length for type {type_name.lower()} cannot exceed {limit}", "22023")
    pg = "varchar" if kind == "varchar" else "char"
    check = f"CONSTRAINT {quote_ident(catalog.BYTES_CHECK_PREFIX + name)} CHECK (octet_length({qname}) <= {n})"
    pg_type = f"character varying({n})" if kind == "varchar" else f"character({n})"
    return qname, f"{qname} {pg}({n}) {check} {rest}".strip(), pg_type, n


def _create_table(toks: list[Tok], ctx: Context) -> str:
    try:
        open_at = next(i for i, t in enumerate(toks) if t.text == "(")
    except StopIteration:
        return join(toks)  # CREATE TABLE ... AS SELECT
    depth, close_at = 0, len(toks)
    for i in range(open_at, len(toks)):
        depth += {"(": 1, ")": -1}.get(toks[i].text, 0)
        if depth == 0:
            close_at = i
            break
    head = significant(toks[:open_at])
    after = [t.text.upper() for t in head].index("TABLE") + 1
    ref = "".join(t.text for t in head[after:] if t.text.upper() not in ("IF", "NOT", "EXISTS"))
    items, columns = [], []
    for item in split_top_level(toks[open_at + 1:close_at]):
        sig = significant(item)
        if not sig:
            continue
        if sig[0].kind == "word" and sig[0].text.upper() in ("PRIMARY", "CONSTRAINT", "UNIQUE", "FOREIGN", "CHECK"):
            items.append(join(item).strip())
            continue
        qname, text, pg_type, _ = _column_def(item)
        items.append(text)
        columns.append((qname[1:-1], pg_type))
    ctx.tables[_key(ref)] = columns
    return join(toks[:open_at]) + "(\n\t" + ",\n\t".join(items) + "\n)" + join(toks[close_at + 1:])


def _alter_add(toks: list[Tok], ctx: Context) -> str:
    sig = significant(toks)
    upper = [t.text.upper() for t in sig]
    at = upper.index("ADD")
    start = at + 2 if upper[at + 1:at + 2] == ["COLUMN"] else at + 1
    if start >= len(sig) or upper[start] in ("CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK"):
        return join(toks)
    qname, text, pg_type, _ = _column_def(sig[start:])
    table = _key("".join(t.text for t in sig[upper.index("TABLE") + 1:at]))
    if table in ctx.tables:
        ctx.tables[table].append((qname[1:-1], pg_type))
    return " ".join(t.text for t in sig[:start]) + " " + text


# --- MERGE ... REMOVE DUPLICATES --------------------------------------------------------------------------------------


def _merge(sig: list[Tok], ctx: Context) -> str:
    upper = [t.text.upper() if t.kind == "word" else "" for t in sig]
    into, using, on = upper.index("INTO"), upper.index("USING"), upper.index("ON")
    target = "".join(t.text for t in sig[into + 1:using])
    source = "".join(t.text for t in sig[using + 1:on])
    cond = " ".join(t.text for t in sig[on + 1:-2])
    cols = [c for c, _ in ctx.columns(target)]
    src_cols = [c for c, _ in ctx.columns(source)]
    if not cols:
        raise RedshiftError(f"relation {target} does not exist", "42P01")
    if len(cols) != len(src_cols):
        raise RedshiftError("Target table and source table attributes don't match.", "0A000")
    q = [quote_ident(c) for c in cols]
    sets = ", ".join(f"{c} = {source}.{c}" for c in q)
    values = ", ".join(f"{source}.{c}" for c in q)
    return (f"MERGE INTO {target} USING {source} ON {cond} WHEN MATCHED THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(q)}) VALUES ({values})")


# --- SUPER navigation -------------------------------------------------------------------------------------------------


def _navigate(toks: list[Tok], ctx: Context) -> list[Tok]:
    supers = ctx.super_columns() | {c for cols in ctx.tables.values() for c, t in cols if t == "jsonb"}
    if not supers:
        return toks
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        chain = [i]
        j = i
        while (toks[j].kind in ("word", "qid") and j + 2 < len(toks) and toks[j + 1].text == "."
               and toks[j + 2].kind in ("word", "qid")):
            j += 2
            chain.append(j)
        if toks[i].kind not in ("word", "qid") or len(chain) < 2 or (j + 1 < len(toks) and toks[j + 1].text == "("):
            out.append(toks[i])
            i += 1
            continue
        names = [toks[k].name if toks[k].kind == "qid" else toks[k].text.lower() for k in chain]
        at = next((n for n, name in enumerate(names[:-1]) if name in supers), None)
        if at is None:
            out.extend(toks[i:j + 1])
        else:
            base = ".".join(toks[k].text for k in chain[:at + 1])
            path = names[at + 1:]
            arrows = "".join(f" -> {literal(p)}" for p in path[:-1]) + f" ->> {literal(path[-1])}"
            out.append(Tok("other", f"({base}{arrows})"))
        i = j + 1
    return out

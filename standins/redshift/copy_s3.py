"""Redshift's `COPY table (cols) FROM 's3://bucket/prefix' <credentials> <options>`, as Redshift documents it.

Redshift reads every object whose key starts with the prefix (in key order), decompresses it (GZIP, BZIP2),
parses it as CSV (or delimited text) and applies the data conversion options to each field:

- an empty field is NULL for every type but CHAR/VARCHAR; EMPTYASNULL makes it NULL there too;
- BLANKSASNULL: a CHAR/VARCHAR field of white space only is NULL; TRIMBLANKS removes trailing blanks;
- VARCHAR(n)/CHAR(n) hold n BYTES: a longer value fails the load, or with TRUNCATECOLUMNS is cut to n bytes
  (never inside a UTF-8 character);
- DATEFORMAT/TIMEFORMAT 'auto' accept what PostgreSQL's date/time input accepts;
- COMPUPDATE/STATUPDATE only tune a real cluster: accepted, no effect.

The stand-in turns the statement into `COPY table (cols) FROM STDIN (FORMAT csv)` and feeds PostgreSQL the
converted rows: every non-NULL value quoted, NULL as an unquoted empty field. Options Redshift has and the
stand-in does not emulate are refused by name, never ignored. Credentials are checked for their form only.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from standins.redshift.sqltext import Tok, quote_ident, unquote_literal

if TYPE_CHECKING:
    from standins.redshift.rewrite import Context

ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]+$")
FLAGS = {"EMPTYASNULL", "BLANKSASNULL", "TRIMBLANKS", "TRUNCATECOLUMNS", "GZIP", "BZIP2", "CSV", "REMOVEQUOTES"}
VALUED = {"IAM_ROLE", "CREDENTIALS", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN", "REGION", "FORMAT",
          "DELIMITER", "IGNOREHEADER", "NULL", "DATEFORMAT", "TIMEFORMAT", "COMPUPDATE", "STATUPDATE", "QUOTE",
          "MAXERROR"}


def _error(message: str, sqlstate: str = "XX000") -> Exception:
    from standins.redshift.rewrite import RedshiftError

    return RedshiftError(message, sqlstate)


@dataclass
class CopySpec:
    table: str  # as written, folded
    columns: list[tuple[str, str]]  # (name, PostgreSQL type) in file order
    bucket: str
    prefix: str
    options: dict[str, Any] = field(default_factory=dict)

    def stdin_sql(self) -> str:
        cols = ", ".join(quote_ident(c) for c, _ in self.columns)
        return f"COPY {self.table} ({cols}) FROM STDIN (FORMAT csv)"

    # --- reading S3 -----------------------------------------------------------------------------------------------

    def _keys(self, s3: Any) -> list[str]:
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        if not keys:
            raise _error(f"The specified S3 prefix '{self.prefix}' does not exist", "XX000")
        return sorted(keys)

    def _open(self, s3: Any, key: str) -> io.TextIOBase:
        raw: Any = s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        if self.options.get("GZIP"):
            raw = gzip.GzipFile(fileobj=raw)
        elif self.options.get("BZIP2"):
            raw = bz2.BZ2File(raw)
        else:
            raw = io.BytesIO(raw.read())
        return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")

    def feed(self, s3: Any) -> Iterator[bytes]:
        """The PostgreSQL CSV that COPY ... FROM STDIN loads, in chunks; `s3` is a boto3 S3 client."""
        opts = self.options
        csv_mode = opts.get("CSV") or str(opts.get("FORMAT", "")).upper() == "CSV"
        delim = opts.get("DELIMITER", "," if csv_mode else "|")
        quote = opts.get("QUOTE", '"')
        header = int(opts.get("IGNOREHEADER", 0))
        null_as = opts.get("NULL")
        rules = [_Field(name, pg_type, opts) for name, pg_type in self.columns]
        out = io.StringIO()
        line = 0
        for key in self._keys(s3):
            with self._open(s3, key) as text:
                reader = csv.reader(text, delimiter=delim, quotechar=quote if csv_mode else "\x00",
                                    quoting=csv.QUOTE_MINIMAL if csv_mode else csv.QUOTE_NONE, strict=True)
                try:
                    for n, row in enumerate(reader, 1):
                        line += 1
                        if n <= header:
                            continue
                        if len(row) != len(rules):
                            raise _error(f"Load into table {self.table} failed: line {n} of s3://{self.bucket}/{key} "
                                         f"has {len(row)} fields, the column list {len(rules)} "
                                         "(Delimiter not found / Extra column(s) found)")
                        vals = []
                        for rule, value in zip(rules, row, strict=True):
                            v = None if null_as is not None and value == null_as else rule.convert(value)
                            vals.append("" if v is None else '"' + v.replace('"', '""') + '"')
                        out.write(",".join(vals) + "\n")
                        if out.tell() > 1 << 16:
                            yield out.getvalue().encode()
                            out = io.StringIO()
                except UnicodeDecodeError as exc:
                    raise _error(f"Load into table {self.table} failed: s3://{self.bucket}/{key}: "
                                 f"Invalid UTF8 ({exc.reason})") from None
                except _Overflow as exc:
                    raise _error(f"Load into table {self.table} failed: line {line} of s3://{self.bucket}/{key}, "
                                 f"column {exc.column}: String length exceeds DDL length ({exc.size} bytes > "
                                 f"{exc.limit}); use TRUNCATECOLUMNS to truncate") from None
        yield out.getvalue().encode()


class _Overflow(Exception):
    def __init__(self, column: str, size: int, limit: int) -> None:
        super().__init__(column)
        self.column, self.size, self.limit = column, size, limit


class _Field:
    """One column's conversion rules."""

    def __init__(self, name: str, pg_type: str, opts: dict[str, Any]) -> None:
        self.name = name
        m = re.match(r"^(character varying|character)\((\d+)\)$", pg_type)
        self.limit = int(m.group(2)) if m else None
        self.text = m is not None or pg_type in ("text", "character varying")
        self.opts = opts

    def convert(self, value: str) -> str | None:
        if value == "":
            return "" if self.text and not self.opts.get("EMPTYASNULL") else None
        if not self.text:
            return value
        if self.opts.get("BLANKSASNULL") and not value.strip():
            return None
        if self.opts.get("TRIMBLANKS"):
            value = value.rstrip(" ")
        if self.limit is not None:
            data = value.encode()
            if len(data) > self.limit:
                if not self.opts.get("TRUNCATECOLUMNS"):
                    raise _Overflow(self.name, len(data), self.limit)
                value = data[:self.limit].decode("utf-8", errors="ignore")  # never half a character
        return value


def _value(tok: Tok) -> str:
    return unquote_literal(tok.text) if tok.kind == "str" else tok.text


def parse_copy(sig: list[Tok], ctx: Context) -> CopySpec | None:
    """A CopySpec for `COPY t [(cols)] FROM 's3://...' ...`, None for any other COPY."""
    upper = [t.text.upper() if t.kind == "word" else "" for t in sig]
    if "FROM" not in upper:
        return None
    at = upper.index("FROM")
    if at + 1 >= len(sig) or sig[at + 1].kind != "str" or not _value(sig[at + 1]).startswith("s3://"):
        return None
    head = sig[1:at]
    cols: list[str] = []
    if "(" in [t.text for t in head]:
        p = [t.text for t in head].index("(")
        cols = [t.name for t in head[p + 1:-1] if t.kind in ("word", "qid")]
        head = head[:p]
    table = "".join(t.text for t in head)
    url = urllib.parse.urlparse(_value(sig[at + 1]))
    opts = _options(sig[at + 2:])
    known = ctx.columns(table)
    if not known:
        raise _error(f'relation "{table}" does not exist', "42P01")
    types = dict(known)
    for c in cols:
        if c not in types:
            raise _error(f'column "{c}" of relation "{table}" does not exist', "42703")
    columns = [(c, types[c]) for c in cols] if cols else known
    return CopySpec(table, columns, url.netloc, url.path.lstrip("/"), opts)


def _options(toks: list[Tok]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    i = 0
    while i < len(toks):
        t = toks[i]
        word = t.text.upper()
        if t.text == ";":
            i += 1
            continue
        if word in FLAGS and not (word == "CSV" and i + 1 < len(toks) and toks[i + 1].text.upper() == "QUOTE"):
            opts[word] = True
            i += 1
            continue
        if word == "CSV":  # CSV QUOTE [AS] 'c'
            opts["CSV"] = True
            i += 1
            continue
        if word not in VALUED:
            raise _error(f"COPY option {t.text} is not emulated by the Redshift stand-in", "0A000")
        i += 1
        if i < len(toks) and toks[i].text.upper() == "AS":
            i += 1
        if i >= len(toks):
            raise _error(f"COPY option {word} needs a value", "42601")
        if word in ("COMPUPDATE", "STATUPDATE") and toks[i].text.upper() not in ("ON", "OFF", "TRUE", "FALSE",
                                                                                "PRESET"):
            opts[word] = True
            continue
        opts[word] = _value(toks[i])
        i += 1
    _check_credentials(opts)
    for fmt in ("DATEFORMAT", "TIMEFORMAT"):
        if str(opts.get(fmt, "auto")).lower() != "auto":
            raise _error(f"COPY {fmt} '{opts[fmt]}' is not emulated by the Redshift stand-in (only 'auto')", "0A000")
    if int(opts.get("MAXERROR", 0)) != 0:
        raise _error("COPY MAXERROR is not emulated by the Redshift stand-in (no stl_load_errors)", "0A000")
    if str(opts.get("FORMAT", "CSV")).upper() != "CSV":
        raise _error(f"COPY FORMAT {opts['FORMAT']} is not emulated by the Redshift stand-in (only CSV)", "0A000")
    if opts.get("REMOVEQUOTES"):
        raise _error("COPY REMOVEQUOTES is not emulated by the Redshift stand-in", "0A000")
    return opts


def _check_credentials(opts: dict[str, Any]) -> None:
    if "IAM_ROLE" in opts:
        role = str(opts["IAM_ROLE"])
        if role.upper() != "DEFAULT" and not ROLE_ARN.match(role):
            raise _error("IAM_ROLE is not a valid IAM role ARN (arn:aws:iam::<account>:role/<name>)", "22023")
    elif "CREDENTIALS" in opts or ("ACCESS_KEY_ID" in opts and "SECRET_ACCESS_KEY" in opts):
        pass
    else:
        raise _error("COPY from S3 needs credentials: IAM_ROLE, CREDENTIALS or ACCESS_KEY_ID/SECRET_ACCESS_KEY",
                     "28000")

"""Lexing of SQL text for the Redshift stand-in: string literals, identifiers and the rest.

Redshift's rewrites (identifier folding, SUPER navigation, type names) must never touch the inside of a
string literal, so every rewrite works on these tokens instead of on raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One token: a '...' literal ('' escapes a quote; E'...' keeps backslash escapes), a "..." identifier, a bare
# word, a number, a -- comment, or any single other character (runs of whitespace kept together).
_TOKEN = re.compile(
    r"""(?P<str>[eE]?'(?:[^'\\]|''|\\.)*')
      |(?P<qid>"(?:[^"]|"")*")
      |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
      |(?P<num>\d+(?:\.\d+)?)
      |(?P<comment>--[^\n]*)
      |(?P<ws>\s+)
      |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


@dataclass
class Tok:
    kind: str  # str | qid | word | num | comment | ws | other
    text: str

    @property
    def name(self) -> str:
        """The identifier a word or quoted identifier names, as written (no folding)."""
        if self.kind == "qid":
            return self.text[1:-1].replace('""', '"')
        return self.text


def tokens(sql: str) -> list[Tok]:
    return [Tok(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(sql)]


def join(toks: list[Tok]) -> str:
    return "".join(t.text for t in toks)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def unquote_literal(text: str) -> str:
    """'a''b' -> a'b (Redshift string literal)."""
    if text[:1] in "eE":
        text = text[1:]
    return text[1:-1].replace("''", "'")


def words(toks: list[Tok]) -> list[str]:
    """The upper-cased bare words, for recognising statements."""
    return [t.text.upper() for t in toks if t.kind == "word"]


def split_top_level(toks: list[Tok], sep: str = ",") -> list[list[Tok]]:
    """Split a token list on `sep` outside parentheses."""
    parts: list[list[Tok]] = [[]]
    depth = 0
    for t in toks:
        if t.kind == "other" and t.text == "(":
            depth += 1
        elif t.kind == "other" and t.text == ")":
            depth -= 1
        if depth == 0 and t.kind == "other" and t.text == sep:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def significant(toks: list[Tok]) -> list[Tok]:
    return [t for t in toks if t.kind not in ("ws", "comment")]

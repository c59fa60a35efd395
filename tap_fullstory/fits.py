"""The misfit rule: a value that does not fit its column's declared type (docs/misfits.md).

One rule for every mode (RECORD through C or the reference, Parquet, Arrow, JSONL), applied to
each record once its columns and CustomVars are split (`Fitter.fit`); the C scanner applies the
same rule and is proved equal to this by the differential fuzzer (tests/fuzz):

- an empty string in a non-string column means absent: null (not counted, nothing kept);
- any other value that does not fit (a wrong JSON type, a timestamp that is not RFC 3339, a
  fraction or an out-of-range number in an integer column, ...) becomes null in the typed column,
  and the original value goes to CustomVars under the field's own name (a known field's name
  never appears there otherwise: hauser's rule sends what it cannot type to CustomVars), counted
  per field;
- a value that fits is never changed (a timestamp is written in RFC 3339 UTC: `rfc3339_utc`).

What fits: integer: a JSON integer in [-2^63, 2^63 - 1] (not 2.0, not true, not "5"); number: a
JSON number, an integer only within +-2^53 (beyond, a double cannot hold it exactly); string: a
JSON string; date-time: an RFC 3339 date-time, years 1-9999, at most microseconds.
"""

from __future__ import annotations

import operator
import typing as t

from tap_fullstory.fields import FLOAT, INT, STR, TS, rfc3339_utc

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: Integers a double holds exactly, all of them (a number column's integers must stay exact).
EXACT_IN_DOUBLE = 2**53


class _Misfit:
    """The marker `fit_value` returns for a value that does not fit."""


MISFIT: t.Any = _Misfit()


def fit_value(kind: str, value: t.Any) -> t.Any:
    """The column's value for `value` (None for None and ""), or `MISFIT`."""
    if value is None:
        return None
    kind_of = type(value)
    if kind == STR:
        return value if kind_of is str else MISFIT
    if kind_of is str and not value:
        return None
    if kind == INT:
        return value if kind_of is int and INT_MIN <= value <= INT_MAX else MISFIT
    if kind == FLOAT:
        if kind_of is float or (kind_of is int and -EXACT_IN_DOUBLE <= value <= EXACT_IN_DOUBLE):
            return value
        return MISFIT
    if kind == TS and kind_of is str:
        normal = rfc3339_utc(value)
        return MISFIT if normal is None else normal
    return MISFIT


class _Plan(t.NamedTuple):
    """What is left to check in rows of one shape (keys, value types)."""

    ints: tuple[str, ...]  # integers in integer columns: within 64 bits?
    exact: tuple[str, ...]  # integers in number columns: within +-2^53?
    stamps: tuple[str, ...]  # text in timestamp columns: RFC 3339 (memoised)?
    check: tuple[str, ...]  # one by one: values of another type than the column's
    get_ints: t.Callable[[dict[str, t.Any]], tuple[t.Any, ...]]
    get_exact: t.Callable[[dict[str, t.Any]], tuple[t.Any, ...]]


def _values(names: tuple[str, ...]) -> t.Callable[[dict[str, t.Any]], tuple[t.Any, ...]]:
    """The values of `names` from a row, as a tuple, in C (operator.itemgetter)."""
    if len(names) == 1:
        name = names[0]
        return lambda cols: (cols[name],)
    return t.cast(t.Callable[[dict[str, t.Any]], tuple[t.Any, ...]],
                  operator.itemgetter(*names) if names else lambda cols: ())


class Fitter:
    """Applies the rule to records of one field catalogue; counts the misfits per field."""

    __slots__ = ("_kinds", "_plans", "_stamps", "counts")

    def __init__(self, fields: t.Iterable[tuple[str, str]]) -> None:
        self._kinds = dict(fields)
        unknown = {kind for kind in self._kinds.values() if kind not in (INT, FLOAT, STR, TS)}
        if unknown:
            raise ValueError(f"field catalogue: unknown type(s) {sorted(unknown)}")
        #: Per row shape (keys, value types): what is left to check (`_plan`). An export's rows
        #: share a few hundred shapes, so most rows cost two tuples, a lookup, min/max in C.
        self._plans: dict[tuple[tuple[str, ...], tuple[type, ...]], _Plan] = {}
        #: Timestamp texts seen valid -> their column value (a session's or user's repeat).
        self._stamps: dict[str, str] = {}
        #: Misfits per field since the last `take_counts`.
        self.counts: dict[str, int] = {}

    def kind(self, name: str) -> str:
        """The catalogue type of a field (`fields.INT`, `FLOAT`, `STR` or `TS`)."""
        return self._kinds[name]

    def add_counts(self, names: t.Iterable[str], counts: t.Iterable[int]) -> None:
        """Misfits the C scanner counted (per field of `names`), added to this window's."""
        for name, count in zip(names, counts, strict=True):
            if count:
                self.counts[name] = self.counts.get(name, 0) + count

    def fit(self, cols: dict[str, t.Any], custom: dict[str, t.Any]) -> dict[str, t.Any]:
        """Fit `cols` in place; returns CustomVars with every misfit's original added under the
        field's name (keys kept sorted, as `fields.Splitter` gives them)."""
        shape = (tuple(cols), tuple(map(type, cols.values())))
        plan = self._plans.get(shape)
        if plan is None:
            if len(self._plans) > 10_000:  # rows of ever new shapes: memory stays bounded
                self._plans.clear()
            plan = self._plans[shape] = self._plan(*shape)
        check = plan.check
        if plan.ints:
            values = plan.get_ints(cols)
            if not (min(values) >= INT_MIN and max(values) <= INT_MAX):
                check += plan.ints
        if plan.exact:
            values = plan.get_exact(cols)
            if not (min(values) >= -EXACT_IN_DOUBLE and max(values) <= EXACT_IN_DOUBLE):
                check += plan.exact
        moved: list[str] | None = None
        stamps = self._stamps
        for name in plan.stamps:
            value = cols[name]
            fitted = stamps.get(value)
            if fitted is None:
                fitted = rfc3339_utc(value)
                if fitted is None:
                    check += (name,)  # a misfit ("" too): decided below
                    continue
                if len(stamps) > 100_000:
                    stamps.clear()
                stamps[value] = fitted
            if fitted is not value:
                cols[name] = fitted
        for name in check:  # any value of another type than its column's
            value = cols[name]
            fitted = fit_value(self._kinds[name], value)
            if fitted is MISFIT:
                if moved is None:
                    moved = []
                moved.append(name)
            elif fitted is not value:
                cols[name] = fitted
        if moved is None:
            return custom
        counts = self.counts
        for name in moved:
            custom[name] = cols[name]
            cols[name] = None
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(custom.items()))

    def _plan(self, names: tuple[str, ...], types: tuple[type, ...]) -> _Plan:
        """For one row shape: the integers to range-check (integer columns; number columns),
        and the names to check one by one (timestamps; any other type than the column's)."""
        ints: list[str] = []
        exact: list[str] = []
        stamps: list[str] = []
        check: list[str] = []
        for name, kind_of in zip(names, types, strict=True):
            kind = self._kinds.get(name)
            if kind is None or kind_of is type(None) or (kind == STR and kind_of is str):
                continue  # EventId (not a catalogue field), null, text in a string column
            if kind_of is int and kind == INT:
                ints.append(name)
            elif kind_of is int and kind == FLOAT:
                exact.append(name)
            elif kind_of is str and kind == TS:
                stamps.append(name)
            elif not (kind_of is float and kind == FLOAT):
                check.append(name)
        return _Plan(tuple(ints), tuple(exact), tuple(stamps), tuple(check),
                     _values(tuple(ints)), _values(tuple(exact)))

    def take_counts(self) -> dict[str, int]:
        """The misfits counted so far, per field; the count starts again."""
        counts, self.counts = self.counts, {}
        return counts


"""One window's records through the reference (`records.RecordMaker`), from its spooled export.

Every mode comes here for the rows the C scanner does not write: the whole window, or the rest
of it after the rows C wrote. A truncated file is downloaded again and resumed after the rows
already emitted (same export, same bytes), never emitting a row twice; rows out of EventStart
order are keyed over the whole window; rows that cannot be decoded fail the window, or go to its
quarantine once each however often the file is read.
"""

from __future__ import annotations

import typing as t

from singer_sdk.exceptions import FatalAPIError

from tap_fullstory.keys import EventKeyer, OutOfOrderError
from tap_fullstory.sources.decode import (
    MalformedExportError,
    TruncatedExportError,
    fail_on_bad_row,
    iter_rows,
)

if t.TYPE_CHECKING:
    import logging

    from tap_fullstory.quarantine import Quarantine
    from tap_fullstory.records import RecordMaker
    from tap_fullstory.sources.download import Spooled
    from tap_fullstory.windows import Window

#: Downloads of one window's export after the first, when each ends truncated.
REDOWNLOADS = 3


def window_records(
    window: Window, spooled: Spooled, maker: RecordMaker, *, emitted: int = 0,
    quarantine: Quarantine | None, logger: logging.Logger,
    report: t.Callable[[Quarantine], None],
) -> t.Iterator[dict]:
    """Records of the window's file after the first `emitted` rows (written already). With a
    `quarantine`, bad rows go there and `report(quarantine)` is told once the window is done;
    else the first bad row fails the window."""
    redownloads = 0
    whole_window = False
    current = spooled
    on_bad = quarantine.add if quarantine is not None else fail_on_bad_row
    try:
        while True:
            try:
                rows = iter_rows(current.path, loads=maker.loads, on_bad=on_bad)
                for record in maker.records(rows, EventKeyer(whole_window=whole_window), emitted):
                    emitted += 1
                    yield record
                if quarantine is not None:
                    report(quarantine)
                return
            except OutOfOrderError:
                logger.info("Export %s is not sorted by EventStart; keying over the whole window",
                            window.label)
                whole_window = True
            except MalformedExportError as exc:
                advice = ("; to set such rows aside in a quarantine file and load the rest, "
                          "set on_bad_row: quarantine" if exc.row is not None else "")
                raise FatalAPIError(f"export {window.label}: {exc}; nothing of this window "
                                    f"is bookmarked{advice}") from None
            except TruncatedExportError as exc:
                redownloads += 1
                if current.again is None or redownloads > REDOWNLOADS:
                    raise FatalAPIError(f"export {window.label}: {exc}") from None
                logger.warning("Export %s: %s; downloading it again (resuming after row %d)",
                               window.label, exc, emitted)
                fresh = current.again()
                if current is not spooled:
                    current.close()
                current = fresh
    finally:
        if quarantine is not None:
            quarantine.abort()  # no-op once committed
        if current is not spooled:
            current.close()

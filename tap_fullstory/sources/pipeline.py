"""Pipelined windows (max_pending_exports > 1): FullStory prepares the next windows' exports while
this one is downloaded and decoded.

A backfill is one export per window, and FullStory's preparation of an export (minutes for a big
window) is the long part; done one window after another, the machine mostly waits. Here worker
threads, one per pending export, create the exports of the next windows and poll them until they
are prepared (one export's retries never hold up another's; the run's first export is created
alone, so a wrong key costs one refused request), and one more thread downloads them, in window
order, at most one window ahead of the window being decoded. The stream still takes the windows
one at a time, in order (`fetch`), so records, BATCH files and STATE come exactly as without
pipelining and the bookmark keeps its meaning. An error of window N (FAILED, poll_timeout, a
refused download...) is raised when the stream reaches window N, after every window before it
has been emitted and bookmarked.

Bounds: at most `max_pending` exports are created and not yet fully emitted (the one being decoded
included), so FullStory never prepares more than that many at once; the spool holds at most two
windows' files (the one being decoded and the next). Exports created ahead and never used (after
an error, or a kill) are abandoned: FullStory expires them, and `close` logs which.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
import typing as t
from dataclasses import dataclass, field

from tap_fullstory.sources.download import Abandoned, Spooled

if t.TYPE_CHECKING:
    from tap_fullstory.windows import Window

#: How long `close` waits for a worker in the middle of an HTTP call before leaving it (daemon).
JOIN_SECONDS = 10.0


class Staged(t.Protocol):
    """A source whose fetch is create -> poll -> download (the segment export)."""

    poll_interval: float
    poll_timeout: float

    def create(self, window: Window) -> str: ...
    def check(self, operation_id: str, window: Window, deadline: float) -> str | None: ...
    def download(self, export_id: str, window: Window, stop: threading.Event | None = None) -> Spooled: ...


@dataclass(eq=False)
class _Slot:
    """One window handed to the pipeline, from its export's creation until the stream took it."""

    window: Window
    number: int  # position in the plan
    operation_id: str | None = None
    export_id: str | None = None
    error: BaseException | None = None
    spooled: Spooled | None = None
    queued: bool = False  # for download
    prepared: threading.Event = field(default_factory=threading.Event)  # export_id or error
    done: threading.Event = field(default_factory=threading.Event)  # spooled or error


class Pipeline:
    """Hands out the windows' spooled exports in order, preparing up to `max_pending` ahead."""

    def __init__(self, source: Staged, max_pending: int, logger: logging.Logger) -> None:
        self.source = source
        self.max_pending = max_pending
        self.logger = logger
        self._slots: collections.deque[_Slot] = collections.deque()
        self._taken: _Slot | None = None  # the slot `fetch` last handed out (or raised for)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._to_prepare: queue.Queue[_Slot | None] = queue.Queue()
        self._downloads: queue.Queue[_Slot | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._handed = 0  # windows handed to the workers so far
        self._failed_at: int | None = None  # the first window whose export failed
        #: Set once the run's first export exists: the others wait for it, so that a wrong key or
        #: URL costs one refused request, not max_pending of them.
        self._first = threading.Event()

    # --- the stream's side (main thread) ------------------------------------------------------

    def fetch(self, window: Window, upcoming: t.Sequence[Window]) -> Spooled:
        """The spooled export of `window`, the window after the one fetched last; `upcoming` are
        the windows after it (as many as may be prepared ahead)."""
        with self._lock:
            if self._taken is not None:  # the previous window is fully emitted: its slot is free
                self._slots.popleft()
                self._taken = None
            if not self._slots:
                self._add(window)
            elif self._slots[0].window != window:
                raise RuntimeError(f"window {window.label} fetched out of order")
            for following in upcoming[len(self._slots) - 1:self.max_pending - 1]:
                self._add(following)
            head = self._slots[0]
            following_slot = self._slots[1] if len(self._slots) > 1 else None
        self._start()
        self._download(head)
        head.done.wait()
        self._taken = head
        if head.error is not None:
            raise head.error
        if following_slot is not None:  # its download overlaps this window's decoding
            self._download(following_slot)
        spooled, head.spooled = head.spooled, None
        assert spooled is not None
        return spooled

    def close(self) -> None:
        """Stop the workers; remove files downloaded ahead; log the exports left unused."""
        self._stop.set()
        for _ in range(self.max_pending):
            self._to_prepare.put(None)
        self._downloads.put(None)
        for thread in self._threads:
            thread.join(JOIN_SECONDS)
        with self._lock:
            left = [slot for slot in self._slots if slot is not self._taken]
            self._slots.clear()
        for slot in left:
            if slot.spooled is not None:
                slot.spooled.close()
                slot.spooled = None
        unused = [slot for slot in left if slot.operation_id is not None]
        if unused:
            self.logger.info(
                "Abandoned %d export(s) created ahead and not used (FullStory expires them): %s",
                len(unused), ", ".join(f"{s.window.label} operation {s.operation_id}" for s in unused),
            )

    def _start(self) -> None:
        if not self._threads:
            self.logger.info(
                "Exports of up to %d windows ahead are prepared while a window is read "
                "(max_pending_exports=%d)", self.max_pending - 1, self.max_pending,
            )
            self._threads = [
                threading.Thread(target=self._guard(self._prepare_loop), name=f"fullstory-prepare-{i}",
                                 daemon=True)
                for i in range(self.max_pending)
            ] + [threading.Thread(target=self._guard(self._download_loop), name="fullstory-download",
                                  daemon=True)]
            for thread in self._threads:
                thread.start()

    def _add(self, window: Window) -> None:
        slot = _Slot(window, self._handed)
        self._handed += 1
        self._slots.append(slot)
        self._to_prepare.put(slot)

    def _download(self, slot: _Slot) -> None:
        if not slot.queued:
            slot.queued = True
            self._downloads.put(slot)

    # --- workers ---------------------------------------------------------------------------

    def _prepare_loop(self) -> None:
        """One worker: takes the next window, creates its export and polls it every
        poll_interval until it is prepared (no new export after a window that failed)."""
        while (slot := self._to_prepare.get()) is not None:
            self._prepare(slot)

    def _prepare(self, slot: _Slot) -> None:
        source = self.source
        while slot.number and not self._first.wait(0.1):
            if self._stop.is_set() or self._failed_at is not None:
                return
        with self._lock:
            if self._stop.is_set() or (self._failed_at is not None and self._failed_at < slot.number):
                return  # never reached by the stream: it stops at the failed window
        try:
            slot.operation_id = source.create(slot.window)
            self._first.set()
            deadline = time.monotonic() + source.poll_timeout
            while not self._stop.is_set():  # polled right away, as the sequential path does
                slot.export_id = source.check(slot.operation_id, slot.window, deadline)
                if slot.export_id is not None:
                    slot.prepared.set()
                    return
                self._stop.wait(min(source.poll_interval, max(0.0, deadline - time.monotonic())))
        except BaseException as exc:  # raised in the stream when it reaches the window
            self._fail(slot, exc)

    def _download_loop(self) -> None:
        """Download the queued slots one at a time, in order, once each is prepared."""
        while (slot := self._downloads.get()) is not None:
            while not slot.prepared.wait(0.5):
                if self._stop.is_set():
                    return
            if slot.error is None and not self._stop.is_set():
                assert slot.export_id is not None
                try:
                    spooled = self.source.download(slot.export_id, slot.window, self._stop)
                except Abandoned:
                    return
                except BaseException as exc:
                    slot.error = exc
                else:
                    with self._lock:
                        if self._stop.is_set():  # closed meanwhile: nobody will take it
                            with contextlib.suppress(OSError):
                                spooled.close()
                            return
                        slot.spooled = spooled
            slot.done.set()

    def _guard(self, loop: t.Callable[[], None]) -> t.Callable[[], None]:
        """A worker that stops unexpectedly fails every window not yet handed out (the stream
        would otherwise wait for them forever)."""

        def run() -> None:
            try:
                loop()
            except BaseException as exc:
                with self._lock:
                    pending = [slot for slot in self._slots if not slot.done.is_set()]
                for slot in pending:
                    self._fail(slot, exc)

        return run

    def _fail(self, slot: _Slot, exc: BaseException) -> None:
        with self._lock:
            if self._failed_at is None or slot.number < self._failed_at:
                self._failed_at = slot.number
        slot.error = exc
        slot.prepared.set()
        slot.done.set()

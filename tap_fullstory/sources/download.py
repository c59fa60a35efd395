"""Spool an export body to a local temporary file, resuming dropped downloads.

Spooling first means a download that dies after minutes (hauser issue #82) is resumed with a Range
request or retried before a single record is emitted, and decoding never depends on the network.
The body is stored exactly as sent (transport encoding included); `decode` unwraps it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import tempfile
import threading
import time
import typing as t
from dataclasses import dataclass

import requests
import urllib3
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_fullstory.sources.http import MAX_TRIES, ExpiredURLError, FullStoryHTTPStream

CHUNK = 1 << 20
MAX_DROPS = 8


class DownloadError(FatalAPIError):
    """The download could not be completed within the retry budget."""


class Abandoned(Exception):
    """The download was stopped (`stop` set): its window will not be used."""


@dataclass
class Spooled:
    """A downloaded export body on local disk; delete it with `close()`."""

    path: str
    size: int
    seconds: float
    #: Downloads the same export again (same file), e.g. when decoding found it truncated.
    again: t.Callable[[], Spooled] | None = None

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _expected_total(response: requests.Response, offset: int) -> int | None:
    if response.status_code == 206:
        content_range = response.headers.get("Content-Range", "")
        total = content_range.rsplit("/", 1)[-1]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def spool(
    http: FullStoryHTTPStream,
    locate: t.Callable[[], str],
    *,
    authenticated: bool,
    logger: logging.Logger,
    what: str,
    stop: threading.Event | None = None,
) -> Spooled:
    """Download the body at `locate()` into a temporary file.

    `locate` is called again when a signed URL is refused (expired), so the source can ask
    FullStory for fresh results. Drops mid-body resume from the bytes already on disk. Setting
    `stop` (a download ahead that will not be used) ends it between chunks: `Abandoned`.
    """
    started = time.monotonic()
    fd, path = tempfile.mkstemp(prefix="tap-fullstory-", suffix=".download")
    url = locate()
    drops = 0
    offset = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                try:
                    try:
                        response = http.open_download(url, authenticated=authenticated, offset=offset)
                    except RetriableAPIError as exc:
                        # open_download has already retried MAX_TRIES times (honouring
                        # Retry-After); retrying that again per drop would multiply the tries.
                        raise DownloadError(f"{what}: gave up after {MAX_TRIES} tries: {exc}") from None
                    if offset and response.status_code != 206:
                        out.seek(0)
                        out.truncate()
                        offset = 0
                    total = _expected_total(response, offset)
                    with response:
                        for chunk in response.raw.stream(CHUNK, decode_content=False):
                            out.write(chunk)
                            offset += len(chunk)
                            if stop is not None and stop.is_set():
                                raise Abandoned(what)
                    if total is not None and offset < total:
                        raise RetriableAPIError(f"{what} ended after {offset} of {total} bytes")
                    break
                except ExpiredURLError as exc:
                    drops += 1
                    if drops >= MAX_DROPS:
                        raise DownloadError(f"{what}: {exc}") from None
                    logger.warning("%s: %s; asking FullStory for a fresh URL", what, exc)
                    url = locate()
                    out.seek(0)
                    out.truncate()
                    offset = 0
                except (
                    RetriableAPIError,
                    requests.RequestException,
                    urllib3.exceptions.HTTPError,
                    ConnectionError,
                    TimeoutError,
                ) as exc:
                    drops += 1
                    if drops >= MAX_DROPS:
                        raise DownloadError(
                            f"{what} failed {drops} times, giving up: {_describe(exc)}"
                        ) from None
                    wait = min(60.0, 2.0 ** (drops - 1)) * (0.75 + random.random() / 2)
                    logger.warning(
                        "%s dropped after %d bytes (%s); resuming in %.1f s",
                        what, offset, _describe(exc), wait,
                    )
                    time.sleep(wait)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return Spooled(path=path, size=offset, seconds=time.monotonic() - started)


def _describe(exc: BaseException) -> str:
    """Exception kind plus message, without URLs (requests/urllib3 messages embed them)."""
    if isinstance(exc, (RetriableAPIError, FatalAPIError)):
        return str(exc)
    return type(exc).__name__


def spool_again(
    http: FullStoryHTTPStream,
    locate: t.Callable[[], str],
    *,
    authenticated: bool,
    logger: logging.Logger,
    what: str,
    stop: threading.Event | None = None,
) -> Spooled:
    """`spool`, keeping in `Spooled.again` how to download the same export once more."""

    def download() -> Spooled:
        spooled = spool(http, locate, authenticated=authenticated, logger=logger, what=what, stop=stop)
        spooled.again = download
        return spooled

    return download()

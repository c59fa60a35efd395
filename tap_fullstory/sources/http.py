"""HTTP for both FullStory APIs: auth, timeouts, retries honouring Retry-After, clear errors.

Built on the SDK's RESTStream machinery (authenticator, `request_decorator`, backoff wait
generator, `validate_response`) rather than a second copy of it. Every message is sanitised:
the API key is never printed and signed download URLs are never shown.
"""

from __future__ import annotations

import email.utils
import logging
import random
import sys
import threading
import time
import typing as t
from urllib.parse import urlsplit

import backoff
import requests
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.streams import RESTStream

if t.TYPE_CHECKING:
    from tap_fullstory.settings import Settings

MAX_TRIES = 8
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
RETRY_AFTER_CAP = 3600.0


class RejectedKeyError(FatalAPIError):
    """FullStory refused the API key (401/403 on an API call)."""


class ExpiredURLError(FatalAPIError):
    """The signed download URL was refused (expired): ask for fresh results and retry."""


class NotFoundError(FatalAPIError):
    """404 on an API call: wrong api_url/region, or no export entitlement."""


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or HTTP-date form), if any."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):  # neither form: wait our own backoff
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, RETRY_AFTER_CAP))


def error_detail(response: requests.Response) -> str:
    """A short, single-line reason from an error body (JSON `message`/`error`, or plain text).

    The status is checked before the body is parsed: bodies may be HTML from a proxy.
    """
    text = ""
    if "json" in response.headers.get("Content-Type", ""):
        try:
            body = response.json()
            if isinstance(body, dict):
                text = str(body.get("message") or body.get("error") or body.get("code") or "")
        except ValueError:
            text = ""
    elif response.headers.get("Content-Type", "").startswith("text/plain"):
        text = response.text
    return " ".join(text.split())[:300]


class FullStoryHTTPStream(RESTStream):
    """Base stream: FullStory auth and a retrying `send` used by the export sources."""

    #: 429 is retried; 5xx are retried by the SDK's rule.
    extra_retry_statuses = [429]  # noqa: RUF012
    #: Validated settings (defaults applied): set by the concrete stream before the SDK's init.
    settings: Settings

    @property
    def url_base(self) -> str:
        return self.settings.api_url

    @property
    def requests_session(self) -> requests.Session:
        """One session per thread: pipelined windows (`sources.pipeline`) are prepared and
        downloaded in worker threads, and requests does not promise a Session is thread-safe."""
        local = self.__dict__.setdefault("_thread_sessions", threading.local())
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        return t.cast(requests.Session, session)

    @property
    def authenticator(self) -> APIKeyAuthenticator:
        # FullStory wants the raw key: "Authorization: Basic <key>" (not base64 user:password).
        return APIKeyAuthenticator(
            key="Authorization", value=f"Basic {self.settings.api_key}", location="header"
        )

    @property
    def timeout(self) -> float:  # type: ignore[override]
        return self.settings.request_timeout

    @property
    def http_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "integration-source": "tap-fullstory"}
        headers.update(self.settings.additional_headers)
        return headers

    def log(self, message: str, *args: t.Any, level: int = logging.INFO, **kwargs: t.Any) -> None:
        """Drop the SDK's generic "An unhandled error occurred while syncing" line for the errors
        the tap reports itself (`TapFullStory.sync_all`): a wrong key is ONE clear ERROR line."""
        if level >= logging.ERROR and message.startswith("An unhandled error occurred") and (
            isinstance(sys.exc_info()[1], (FatalAPIError, RetriableAPIError))
        ):
            return
        super().log(message, *args, level=level, **kwargs)

    # --- retries -------------------------------------------------------------------------

    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """Retry-After when the server gives one, else capped exponential backoff with jitter."""

        def waits() -> t.Generator[float, t.Any, None]:
            attempt = 0
            exc = yield 0.0
            while True:
                attempt += 1
                asked = retry_after_seconds(getattr(exc, "response", None))
                if asked is None:
                    base = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
                    asked = base * (0.75 + random.random() / 2)
                exc = yield asked

        return waits()

    def backoff_max_tries(self) -> int:
        return MAX_TRIES

    def backoff_handler(self, details: t.Any) -> None:
        exc = details.get("exception")
        self.logger.warning(
            "Retrying in %.1f s (attempt %d of %d): %s",
            details.get("wait") or 0.0,
            details.get("tries") or 0,
            MAX_TRIES,
            exc,
        )

    def request_decorator(self, func: t.Callable) -> t.Callable:
        return backoff.on_exception(
            self.backoff_wait_generator,
            (RetriableAPIError,),
            max_tries=self.backoff_max_tries,
            on_backoff=self.backoff_handler,
            jitter=None,
            logger=None,
        )(func)

    def validate_response(self, response: requests.Response) -> None:
        self._validate(response, urlsplit(response.url).path)

    def _validate(
        self, response: requests.Response, where: str, secrets: t.Sequence[str] = ()
    ) -> None:
        """Raise for error statuses; `where` names the call (never a signed URL's path or query),
        `secrets` are scrubbed from any detail quoted from the body."""
        status = response.status_code
        if status == 429 or status >= 500:
            detail = _scrub(error_detail(response) or response.reason, secrets)
            raise RetriableAPIError(f"FullStory answered {status} for {where}: {detail}", response)
        if status in (401, 403):
            raise RejectedKeyError(
                f"FullStory rejected the API key (HTTP {status} for {where}): check api_key "
                "(the segment export needs an Admin key)"
            )
        if status == 404:
            raise NotFoundError(
                f"FullStory answered 404 for {where}: check api_url (EU accounts use "
                "https://api.eu1.fullstory.com; bundles use https://export.fullstory.com) and that "
                "the account has the data export entitlement"
            )
        if 400 <= status < 500:
            detail = _scrub(error_detail(response) or response.reason, secrets)
            raise FatalAPIError(f"FullStory answered {status} for {where}: {detail}")

    # --- sending ---------------------------------------------------------------------------

    def _send_once(
        self, prepared: requests.PreparedRequest, stream: bool, signed: bool = False
    ) -> requests.Response:
        # A signed URL's path and query are credentials: name it, never show it.
        parts = urlsplit(prepared.url or "")
        where = "the signed download URL" if signed else parts.path
        secrets = [x for x in (parts.path, parts.query) if len(x) > 1] if signed else []
        try:
            response = self.requests_session.send(prepared, timeout=self.timeout, stream=stream)
        except requests.RequestException as exc:
            # requests' messages embed the full URL; keep only the exception kind and path.
            raise RetriableAPIError(f"{type(exc).__name__} calling {where}") from None
        if signed and response.status_code in (400, 401, 403, 404, 410):
            response.close()
            raise ExpiredURLError(
                f"the signed download URL was refused (HTTP {response.status_code}); it may have expired"
            )
        self._validate(response, where, secrets)
        return response

    def api(
        self,
        method: str,
        path: str,
        *,
        json: t.Any = None,
        params: dict[str, t.Any] | None = None,
    ) -> t.Any:
        """Call a FullStory API endpoint (authenticated, retried) and return its JSON body."""
        request = requests.Request(
            method, f"{self.url_base}{path}", json=json, params=params, headers=self.http_headers
        )
        prepared = self.authenticator(self.requests_session.prepare_request(request))
        response = self.request_decorator(self._send_once)(prepared, False)
        try:
            return response.json()
        except ValueError:
            raise FatalAPIError(f"FullStory answered non-JSON for {path}") from None

    def open_download(
        self, url: str, *, authenticated: bool, offset: int = 0
    ) -> requests.Response:
        """Open a streaming GET. Signed URLs are fetched without our Authorization header.

        Retries the opening only; the caller handles drops mid-body (it can resume with a Range
        request from `offset`).
        """
        headers = {"Accept-Encoding": "gzip"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = requests.Request("GET", url, headers=headers)
        prepared = self.requests_session.prepare_request(request)
        if authenticated:
            prepared = self.authenticator(prepared)
            for key, value in self.http_headers.items():
                prepared.headers.setdefault(key, value)
        else:
            prepared.headers.pop("Authorization", None)
            remember_signed(prepared.url or url)
        return self.request_decorator(self._send_once)(prepared, True, not authenticated)


def _scrub(text: str, secrets: t.Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


#: Path and query of every signed URL this process has opened: redacted from urllib3's log lines.
_SIGNED_PARTS: set[str] = set()
_URLLIB3_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.response",
                    "urllib3.poolmanager", "urllib3.util.retry")


class _RedactSignedURLs(logging.Filter):
    """Rewrites a urllib3 log record that quotes a signed URL's path or query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SIGNED_PARTS:
            text = record.getMessage()
            redacted = _scrub(text, sorted(_SIGNED_PARTS, key=len, reverse=True))
            if redacted != text:
                record.msg, record.args = redacted, None
        return True


_REDACT = _RedactSignedURLs()


def remember_signed(url: str) -> None:
    """Register a signed URL so that no urllib3 log line can show its path or query."""
    parts = urlsplit(url)
    _SIGNED_PARTS.update(x for x in (parts.path, parts.query) if len(x) > 1)


def quiet_urllib3() -> None:
    """urllib3 logs full URLs (with signed query strings) at DEBUG; keep it at WARNING, and should
    a logging config turn its DEBUG lines back on, redact the signed URLs in them."""
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)

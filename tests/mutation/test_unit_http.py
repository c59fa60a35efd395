"""sources/http.py, exactly: Retry-After (both forms, the cap), the backoff, the statuses, the
messages, the redaction of signed URLs. In-process, no server: responses are built by hand."""

from __future__ import annotations

import email.utils
import logging
import time
import typing as t

import pytest
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_fullstory.sources import http
from tap_fullstory.sources.http import (
    ExpiredURLError,
    NotFoundError,
    RejectedKeyError,
    error_detail,
    retry_after_seconds,
)
from tap_fullstory.tap import TapFullStory


def response(status: int = 200, body: bytes = b"", ctype: str = "", url: str = "https://x/p",
             **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code, r._content, r.url, r.reason = status, body, url, "Reason Phrase"
    r._content_consumed = True
    if ctype:
        r.headers["Content-Type"] = ctype
    for k, v in headers.items():
        r.headers[k.replace("_", "-")] = v
    return r


@pytest.fixture(autouse=True)
def fresh_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signed parts seen and urllib3's loggers are process-wide: each test starts afresh (a
    test must not pass on what an earlier one registered)."""
    monkeypatch.setattr(http, "_SIGNED_PARTS", set())
    for name in http._URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "filters", [])
        monkeypatch.setattr(logger, "level", logging.NOTSET)


@pytest.fixture(scope="module")
def stream() -> t.Any:
    return TapFullStory(config={"api_key": "k", "request_timeout": 12.5},
                        parse_env_config=False).streams["events"]


# ----------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0), ("3600", 3600.0), ("3601", 3600.0),
    ("86400", 3600.0),
])
def test_retry_after_delta_seconds(value, seconds) -> None:
    assert retry_after_seconds(response(429, Retry_After=value)) == seconds


def test_retry_after_http_date(monkeypatch) -> None:
    monkeypatch.setattr(http.time, "time", lambda: 1_700_000_000.0)
    in_90 = email.utils.formatdate(1_700_000_090, usegmt=True)
    in_2h = email.utils.formatdate(1_700_007_200, usegmt=True)
    past = email.utils.formatdate(1_699_999_000, usegmt=True)
    assert retry_after_seconds(response(503, Retry_After=in_90)) == 90.0
    assert retry_after_seconds(response(503, Retry_After=in_2h)) == 3600.0
    assert retry_after_seconds(response(503, Retry_After=past)) == 0.0


def test_no_retry_after() -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds(response(429)) is None
    assert retry_after_seconds(response(429, Retry_After="")) is None


# ----------------------------------------------------------------------------- backoff


def test_waits(stream, monkeypatch) -> None:
    monkeypatch.setattr(http.random, "random", lambda: 0.5)
    waits = stream.backoff_wait_generator()
    assert next(waits) == 0.0
    plain = RetriableAPIError("x", response(503))
    got = [waits.send(plain) for _ in range(9)]
    assert got == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert waits.send(RetriableAPIError("x", response(429, Retry_After="9"))) == 9
    assert waits.send(RetriableAPIError("x", None)) == 60  # attempt 11: capped


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.75), (0.999, 1.2495)])
def test_jitter(stream, monkeypatch, draw, factor) -> None:
    monkeypatch.setattr(http.random, "random", lambda: draw)
    waits = stream.backoff_wait_generator()
    next(waits)
    assert [waits.send(ValueError()) for _ in range(3)] == pytest.approx(
        [1 * factor, 2 * factor, 4 * factor])


def test_tries_and_the_retry_decorator(stream, monkeypatch, caplog) -> None:
    import types

    import backoff._sync

    slept: list[float] = []
    monkeypatch.setattr(backoff._sync, "time", types.SimpleNamespace(sleep=slept.append))
    calls: list[int] = []

    def always_503() -> None:
        calls.append(1)
        raise RetriableAPIError("FullStory answered 503", response(503, Retry_After="4"))

    with caplog.at_level(logging.WARNING), pytest.raises(RetriableAPIError):
        stream.request_decorator(always_503)()
    assert len(calls) == stream.backoff_max_tries() == http.MAX_TRIES == 8
    assert slept == [4.0] * 7
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert lines[0] == "Retrying in 4.0 s (attempt 1 of 8): FullStory answered 503"
    assert lines[-1] == "Retrying in 4.0 s (attempt 7 of 8): FullStory answered 503"

    def fatal() -> None:
        calls.append(2)
        raise FatalAPIError("no")

    with pytest.raises(FatalAPIError):
        stream.request_decorator(fatal)()
    assert calls.count(2) == 1


def test_constants() -> None:
    assert (http.MAX_TRIES, http.BACKOFF_BASE, http.BACKOFF_CAP, http.RETRY_AFTER_CAP) == (
        8, 1.0, 60.0, 3600.0)


# ----------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(("status", "kind", "text"), [
    (429, RetriableAPIError, "FullStory answered 429 for /where: slow down"),
    (500, RetriableAPIError, "FullStory answered 500 for /where: slow down"),
    (503, RetriableAPIError, "FullStory answered 503 for /where: slow down"),
    (401, RejectedKeyError, "FullStory rejected the API key (HTTP 401 for /where): check api_key "
                            "(the segment export needs an Admin key)"),
    (403, RejectedKeyError, "FullStory rejected the API key (HTTP 403 for /where): check api_key "
                            "(the segment export needs an Admin key)"),
    (404, NotFoundError, "FullStory answered 404 for /where: check api_url (EU accounts use "
                         "https://api.eu1.fullstory.com; bundles use https://export.fullstory.com) "
                         "and that the account has the data export entitlement"),
    (400, FatalAPIError, "FullStory answered 400 for /where: slow down"),
    (499, FatalAPIError, "FullStory answered 499 for /where: slow down"),
])
def test_statuses(stream, status, kind, text) -> None:
    with pytest.raises(kind) as caught:
        stream._validate(response(status, b'{"message": "slow  down"}', "application/json"),
                         "/where")
    assert type(caught.value) is kind and str(caught.value) == text


@pytest.mark.parametrize("status", [200, 204, 206, 301, 399])
def test_statuses_that_pass(stream, status) -> None:
    stream._validate(response(status), "/where")


def test_validate_response_names_the_path(stream) -> None:
    with pytest.raises(RetriableAPIError, match=r"^FullStory answered 502 for /segments/v1/exports: "):
        stream.validate_response(response(502, url="https://api.x/segments/v1/exports?q=1"))


def test_a_quoted_body_is_scrubbed(stream) -> None:
    with pytest.raises(RetriableAPIError) as caught:
        stream._validate(response(500, b"token /sig/abc?X-Sig=zz expired", "text/plain"),
                         "the signed download URL", ["/sig/abc", "X-Sig=zz"])
    assert str(caught.value) == ("FullStory answered 500 for the signed download URL: token "
                                 "<redacted>?<redacted> expired")


@pytest.mark.parametrize(("body", "ctype", "detail"), [
    (b'{"message": "a\\n b", "error": "e"}', "application/json", "a b"),
    (b'{"error": "e", "code": "c"}', "application/json; charset=utf-8", "e"),
    (b'{"code": "c"}', "application/json", "c"),
    (b'{"other": 1}', "application/json", ""),
    (b'[1]', "application/json", ""),
    (b"{nope", "application/json", ""),
    (b"  plain\n\ttext  ", "text/plain; charset=utf-8", "plain text"),
    (b"<html>x</html>", "text/html", ""),
    (b"x" * 400, "text/plain", "x" * 300),
    (b"body", "", ""),
])
def test_error_detail(body, ctype, detail) -> None:
    assert error_detail(response(500, body, ctype)) == detail


def test_reason_when_the_body_says_nothing(stream) -> None:
    with pytest.raises(RetriableAPIError, match=r"for /w: Reason Phrase$"):
        stream._validate(response(503, b"<html/>", "text/html"), "/w")


# ----------------------------------------------------------------------------- the stream


def test_stream_settings(stream) -> None:
    assert stream.timeout == 12.5
    assert stream.http_headers == {"Accept": "application/json", "integration-source": "tap-fullstory"}
    assert stream.authenticator.auth_headers == {"Authorization": "Basic k"}
    assert stream.extra_retry_statuses == [429]
    assert stream.requests_session is stream.requests_session


def test_a_session_per_thread(stream) -> None:
    import threading

    sessions: list[t.Any] = []
    worker = threading.Thread(target=lambda: sessions.append(stream.requests_session))
    worker.start()
    worker.join()
    assert sessions[0] is not stream.requests_session


def test_send_once_never_shows_a_signed_url(stream, monkeypatch) -> None:
    prepared = requests.Request("GET", "https://dl.example/sig/abc?X-Sig=zz").prepare()

    def refuse(*_a: t.Any, **_k: t.Any) -> t.Any:
        raise requests.ConnectionError("failed https://dl.example/sig/abc?X-Sig=zz")

    monkeypatch.setattr(stream.requests_session, "send", refuse)
    with pytest.raises(RetriableAPIError) as caught:
        stream._send_once(prepared, True, True)
    assert str(caught.value) == "ConnectionError calling the signed download URL"
    with pytest.raises(RetriableAPIError) as api:
        stream._send_once(requests.Request("GET", "https://api.x/a/b?k=1").prepare(), False)
    assert str(api.value) == "ConnectionError calling /a/b"

    for status in (400, 401, 403, 404, 410):
        monkeypatch.setattr(stream.requests_session, "send",
                            lambda *_a, status=status, **_k: response(status))
        with pytest.raises(ExpiredURLError) as expired:
            stream._send_once(prepared, True, True)
        assert str(expired.value) == (f"the signed download URL was refused (HTTP {status}); it "
                                      "may have expired")
    seen: dict[str, t.Any] = {}

    def ok(request: t.Any, **kwargs: t.Any) -> requests.Response:
        seen.update(kwargs)
        return response(200)

    monkeypatch.setattr(stream.requests_session, "send", ok)
    assert stream._send_once(prepared, True, True).status_code == 200
    assert seen == {"timeout": 12.5, "stream": True}


def test_urllib3_lines_are_redacted() -> None:
    http.quiet_urllib3()
    http.quiet_urllib3()  # twice: one filter
    for name in http._URLLIB3_LOGGERS:
        assert logging.getLogger(name).filters == [http._REDACT], name
    assert logging.getLogger("urllib3.connectionpool").level == logging.NOTSET
    logger = logging.getLogger("urllib3.connectionpool")
    assert logger.filters.count(http._REDACT) == 1
    assert logging.getLogger("urllib3").level == logging.WARNING
    http.remember_signed("https://dl.example/sig/path?X-Sig=secret&b=2")
    record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, "f", 1,
                               '"GET %s HTTP/1.1" 200', ("/sig/path?X-Sig=secret&b=2",), None)
    assert http._REDACT.filter(record) is True
    assert record.getMessage() == '"GET <redacted>?<redacted> HTTP/1.1" 200'
    plain = logging.LogRecord("urllib3", logging.DEBUG, "f", 1, "nothing %s", ("here",), None)
    assert http._REDACT.filter(plain) and plain.getMessage() == "nothing here" and plain.args


def test_the_longest_signed_part_is_redacted_first() -> None:
    """A signed part inside a longer one (here a query inside another query) must not leave the
    rest of the longer one visible."""
    http.remember_signed("https://h/p1?a=1&q=9")
    http.remember_signed("https://h/p2?q=9")
    record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, "f", 1,
                               "GET /p1?a=1&q=9", None, None)
    http._REDACT.filter(record)
    assert record.getMessage() == "GET <redacted>?<redacted>"


@pytest.mark.parametrize("value", ["soon", "Wed, 99 Foo 2024", "1h"])
def test_a_retry_after_in_neither_form_is_ignored(value) -> None:
    assert retry_after_seconds(response(429, Retry_After=value)) is None


class Sent:
    """Stands in for the session's send: records each request and answers `answer`."""

    def __init__(self, answer: requests.Response) -> None:
        self.answer, self.requests, self.kwargs = answer, [], []

    def __call__(self, prepared: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        self.requests.append(prepared)
        self.kwargs.append(kwargs)
        return self.answer


def test_api_call(stream, monkeypatch) -> None:
    sent = Sent(response(200, b'{"operationId": "op"}', "application/json"))
    monkeypatch.setattr(stream.requests_session, "send", sent)
    assert stream.api("POST", "/segments/v1/exports", json={"a": 1}, params={"p": "q r"}) == {
        "operationId": "op"}
    (request,), (kwargs,) = sent.requests, sent.kwargs
    assert request.method == "POST"
    assert request.url == "https://api.fullstory.com/segments/v1/exports?p=q+r"
    assert request.body == b'{"a": 1}'
    assert request.headers["Authorization"] == "Basic k"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["integration-source"] == "tap-fullstory"
    assert kwargs == {"timeout": 12.5, "stream": False}
    sent.answer = response(200, b"<html/>", "text/html")
    with pytest.raises(FatalAPIError) as caught:
        stream.api("GET", "/operations/v1/x")
    assert str(caught.value) == "FullStory answered non-JSON for /operations/v1/x"


def test_additional_headers() -> None:
    s = TapFullStory(config={"api_key": "k", "additional_headers": {"X-Team": "data"}},
                     parse_env_config=False).streams["events"]
    assert s.http_headers == {"Accept": "application/json", "integration-source": "tap-fullstory",
                              "X-Team": "data"}


@pytest.mark.parametrize("offset", [0, 1234])
def test_open_a_signed_download(stream, monkeypatch, offset) -> None:
    sent = Sent(response(206 if offset else 200))
    monkeypatch.setattr(stream.requests_session, "send", sent)
    url = f"https://dl.example/sig/d{offset}?X-Sig=s{offset}"
    assert stream.open_download(url, authenticated=False, offset=offset) is sent.answer
    (request,), (kwargs,) = sent.requests, sent.kwargs
    assert request.method == "GET" and request.url == url
    assert "Authorization" not in request.headers
    assert request.headers["Accept-Encoding"] == "gzip"
    assert request.headers.get("Range") == (f"bytes={offset}-" if offset else None)
    assert kwargs == {"timeout": 12.5, "stream": True}
    assert {f"/sig/d{offset}", f"X-Sig=s{offset}"} <= http._SIGNED_PARTS
    sent.answer = response(403, url=url)
    with pytest.raises(ExpiredURLError):  # signed: refused means expired, and it is never shown
        stream.open_download(url, authenticated=False, offset=offset)


def test_open_an_authenticated_download(stream, monkeypatch) -> None:
    sent = Sent(response(200))
    monkeypatch.setattr(stream.requests_session, "send", sent)
    url = "https://export.example/api/v1/export/get?id=77"
    stream.open_download(url, authenticated=True, offset=5)
    (request,) = sent.requests
    assert request.headers["Authorization"] == "Basic k"
    assert request.headers["Accept"] == "*/*"  # the session's own: a download is not JSON
    assert request.headers["integration-source"] == "tap-fullstory"
    assert request.headers["Range"] == "bytes=5-" and request.headers["Accept-Encoding"] == "gzip"
    assert "id=77" not in http._SIGNED_PARTS
    sent.answer = response(404, url=url)
    with pytest.raises(NotFoundError):  # authenticated: a 404 is the API's, not an expiry
        stream.open_download(url, authenticated=True)
    assert "Range" not in sent.requests[-1].headers  # no offset: the whole body


def test_signed_errors_are_scrubbed_and_named(stream, monkeypatch) -> None:
    url = "https://dl.example/a?q"
    monkeypatch.setattr(stream.requests_session, "send", Sent(response(
        500, b"failed /a and q and /a?q", "text/plain", url=url)))
    prepared = requests.Request("GET", url).prepare()
    with pytest.raises(RetriableAPIError) as caught:
        stream._send_once(prepared, True, True)
    # "/a" (2 characters) is a secret; a one-character query is too short to be one
    assert str(caught.value) == ("FullStory answered 500 for the signed download URL: failed "
                                 "<redacted> and q and <redacted>?q")
    with pytest.raises(RetriableAPIError) as api:
        stream._send_once(prepared, False)
    assert str(api.value) == "FullStory answered 500 for /a: failed /a and q and /a?q"
    root = "https://dl.example/?q"
    monkeypatch.setattr(stream.requests_session, "send", Sent(response(
        500, b"a/b", "text/plain", url=root)))
    with pytest.raises(RetriableAPIError, match=r": a/b$"):  # "/" alone is no secret
        stream._send_once(requests.Request("GET", root).prepare(), True, True)


def test_remember_signed() -> None:
    http.remember_signed("https://h.example/s1gned/path?sig=abc&x=1")
    http.remember_signed("https://h.example/?q")
    http.remember_signed("https://h.example/z")
    assert {"/s1gned/path", "sig=abc&x=1", "/z"} <= http._SIGNED_PARTS
    assert "/" not in http._SIGNED_PARTS and "q" not in http._SIGNED_PARTS


def test_the_retry_log_line_with_no_wait(stream, monkeypatch, caplog) -> None:
    import types

    import backoff._sync

    monkeypatch.setattr(backoff._sync, "time", types.SimpleNamespace(sleep=lambda _s: None))
    tries = iter([RetriableAPIError("once", response(429, Retry_After="0"))])

    def flaky() -> str:
        for exc in tries:
            raise exc
        return "done"

    with caplog.at_level(logging.DEBUG):
        assert stream.request_decorator(flaky)() == "done"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "Retrying in 0.0 s (attempt 1 of 8): once"]
    assert not [r for r in caplog.records if r.name.startswith("backoff")]  # no second logger


def test_fmt_whatever_the_local_zone(monkeypatch) -> None:
    import datetime as dt

    from tap_fullstory.windows import fmt

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert fmt(dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone.utc)) == "2024-01-01T01:00:00Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_retriable_error_carries_its_response(stream) -> None:
    answer = response(429, Retry_After="3")
    with pytest.raises(RetriableAPIError) as caught:
        stream._validate(answer, "/w")
    assert caught.value.response is answer  # the wait generator reads Retry-After from it


def test_the_sdks_generic_error_line_is_dropped_for_api_errors(stream, caplog) -> None:
    generic = "An unhandled error occurred while syncing '%s'"
    with caplog.at_level(logging.INFO, logger=stream.logger.name):
        try:
            raise FatalAPIError("no")
        except FatalAPIError:
            stream.log(generic, "events", level=logging.ERROR)
            stream.log(generic, "events", level=logging.CRITICAL)
            stream.log("An unhandled error occurred, said at %s", "WARNING", level=logging.WARNING)
            stream.log("Another %s", "error", level=logging.ERROR, stacklevel=1)
        try:
            raise KeyError("k")
        except KeyError:
            stream.log(generic, "events", level=logging.ERROR)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "An unhandled error occurred, said at WARNING"),
        (logging.ERROR, "Another error"),
        (logging.ERROR, "An unhandled error occurred while syncing 'events'")]

"""visionbench.toolkit: what a third-party HTTP provider needs, as the built-ins use it."""

import email.utils
import time

import pytest

from visionbench.errors import BadRequest, ConfigError, Fatal, RateLimited, Transient
from visionbench.run.adaptive_limit import pushback
from visionbench.secrets import redact
from visionbench.toolkit import (
    MAX_RETRY_AFTER_S,
    StreamTimer,
    api_key,
    error_for_status,
    header,
    html_title,
    is_simulated,
    not_the_api,
    retry_after,
)
from visionbench.types import Response


def test_api_key_is_read_registered_for_redaction_and_a_missing_one_names_the_variable(monkeypatch):
    monkeypatch.setenv("MY_VLM_KEY", "  sk-toolkit-secret-123  ")
    assert api_key("MY_VLM_KEY", "my-vlm") == "sk-toolkit-secret-123"
    assert redact("key sk-toolkit-secret-123 here") == "key [REDACTED] here"
    monkeypatch.delenv("MY_VLM_KEY")
    with pytest.raises(ConfigError, match=r"provider 'my-vlm': environment variable MY_VLM_KEY is not set"):
        api_key("MY_VLM_KEY", "my-vlm", at_start=True)
    with pytest.raises(Fatal, match=r"MY_VLM_KEY is not set \(it must hold the API key; or else\)"):
        api_key("MY_VLM_KEY", "my-vlm", hint="; or else")
    assert api_key("MY_VLM_KEY", "my-vlm", required=False) is None


def test_retry_after_reads_ms_seconds_and_dates_within_bounds():
    assert retry_after({"Retry-After-Ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "2.5"}) == 2.5
    assert retry_after({"retry-after": "-3"}) is None and retry_after({"retry-after-ms": "-3"}) is None
    assert retry_after({"retry-after": "1e12"}) == MAX_RETRY_AFTER_S
    assert retry_after({"retry-after": "inf"}) is None and retry_after({"retry-after": "nan"}) is None
    assert retry_after({"retry-after-ms": "junk", "retry-after": "4"}) == 4.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after({"retry-after": soon}) <= 31
    assert retry_after({"retry-after": email.utils.formatdate(time.time() - 60, usegmt=True)}) == 0.0
    assert retry_after({"retry-after": "tomorrow"}) is None and retry_after({}) is None and retry_after(None) is None


def test_header_and_simulated_ignore_case():
    class Headers:
        def __init__(self, d):
            self.d = d

        def keys(self):
            return self.d.keys()

        def __getitem__(self, k):
            return self.d[k]

        def __bool__(self):
            return bool(self.d)

    assert header(Headers({"X-Request-Id": "abc"}), "x-request-id") == "abc"
    assert is_simulated({"x-visionbench-simulated": "1"}) and not is_simulated({"x-visionbench-simulated": "false"})
    assert not is_simulated({})


def test_status_to_neutral_error_and_the_provider_says_what_is_an_overload():
    limited = error_for_status(429, "slow down", retry_after_s=2.0)
    assert isinstance(limited, RateLimited) and limited.retry_after == 2.0 and pushback(limited)
    for status in (None, 408, 409, 499, 500, 502):
        error = error_for_status(status, "x")
        assert isinstance(error, Transient) and not error.overload and not pushback(error)
    assert pushback(error_for_status(503, "overloaded")) and pushback(error_for_status(529, "overloaded"))
    # A service that says "overloaded" with another status says so itself; 503 then is only a failure.
    assert pushback(error_for_status(500, "busy", overload_statuses={500}))
    assert not pushback(error_for_status(503, "down", overload_statuses=()))
    for status in (400, 413, 422, 431):
        assert isinstance(error_for_status(status, "x"), BadRequest)
    for status in (401, 403, 404):
        assert isinstance(error_for_status(status, "x"), Fatal)


def test_stream_timer_times_the_first_token_and_the_rest(monkeypatch):
    now = iter([10.0, 10.5, 11.0, 12.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(now))
    timer = StreamTimer()  # sent at 10.0
    timer.token()  # first token at 10.5
    timer.token()  # later tokens: no clock read
    timer.done()  # 11.0
    stamped = timer.stamp(Response(text="3", usage=None))
    assert (stamped.ttft_s, stamped.generation_s) == (0.5, 0.5)
    silent = StreamTimer()  # 12.0 ... no token: the first is at the end
    silent.end = 13.0
    assert (silent.ttft_s, silent.generation_s) == (1.0, 0.0)


def test_an_html_page_is_told_by_its_title_and_a_wrong_base_url_from_a_gateway():
    page = "<!-- x -->\n<!DOCTYPE html><html><head><title> Welcome to\n nginx &amp; co </title></head></html>"
    assert html_title(None, page) == "Welcome to nginx & co"
    assert html_title("text/html; charset=utf-8", b"<html><body><h1>Not <b>Found</b></h1></body></html>") == "Not Found"
    assert html_title("text/html", "<html><script>var a = 1</script>Bad Gateway</html>") == "Bad Gateway"
    assert html_title("text/html", "<title>" + "x" * 100 + "</title>") == "x" * 79 + "…"
    assert html_title("application/json", '{"error": "<html>"}') is None and html_title(None, "Not found") is None
    wrong = not_the_api("OpenAI", "http://127.0.0.1:8000/v1", 404, "404 Not Found")
    assert type(wrong) is Fatal and wrong.status == 404 and not wrong.retryable
    assert str(wrong) == (
        "an HTML page answered (HTTP 404, '404 Not Found'), not the OpenAI API: is base_url right? "
        "(http://127.0.0.1:8000/v1)"
    )
    assert "(HTTP 200), not the Gemini API: is base_url right? (the SDK's default URL)" in str(
        not_the_api("Gemini", None, 200, "")
    )
    gateway = not_the_api("Anthropic", None, 502, "Bad Gateway")
    assert type(gateway) is Transient and gateway.retryable and gateway.status == 502
    assert str(gateway).startswith("an HTML page answered (HTTP 502, 'Bad Gateway') from a gateway or proxy")
    assert type(not_the_api("Anthropic", None, 429, "Too Many Requests")) is RateLimited

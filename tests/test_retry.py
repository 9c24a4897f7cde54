from datetime import UTC, datetime

import pytest

from retab_mcp.api.errors import APITimeoutError, BadRequestError, error_message
from retab_mcp.api.retry import RetryPolicy, is_retryable, parse_retry_after


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 2.5 ", 2.5), ("-3", 0.0), ("Sun, 29 Nov 2026 12:00:30 GMT", 30.0), ("soon", None), ("", None)],
)
def test_retry_after_reads_seconds_and_http_dates(header: str, seconds: float | None) -> None:
    now = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds


def test_timeouts_are_retried_but_a_bad_request_is_not() -> None:
    assert is_retryable(APITimeoutError("slow", url="http://x"))
    assert not is_retryable(BadRequestError("no", status_code=400, request_id=None))
    assert RetryPolicy().delay_before_retry(BadRequestError("no", status_code=400, request_id=None), 1, 0) is None


def test_a_body_that_is_not_json_still_gives_a_message() -> None:
    assert error_message(b"<html>502 Bad Gateway</html>") == "<html>502 Bad Gateway</html>"
    assert error_message(b"") is None
    assert error_message(b'{"detail": {"code": "X", "message": "Quota exceeded"}}') == "Quota exceeded"
    assert error_message(b'{"detail": {"details": {"error": {"message": "nested"}}}}') == "nested"

"""Gemini API error bodies: ``{"error": {code, message, status, details}}`` as google.rpc statuses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from visionbench.emulator.httputil import json_response, retry_after_headers

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


#: The quota a 429 names (google.rpc.QuotaFailure), by the emulator's limit; the metric names follow the API's.
QUOTAS = {
    "requests": ("generate_content_paid_tier_requests", "GenerateRequestsPerMinutePerProjectPerModel"),
    "input_tokens": (
        "generate_content_paid_tier_input_token_count",
        "GenerateContentPaidTierInputTokensPerModelPerMinute",
    ),
    "output_tokens": (
        "generate_content_paid_tier_output_token_count",
        "GenerateContentPaidTierOutputTokensPerModelPerMinute",
    ),
}


def error_body(status: int, message: str, retry_after: float | None = None, quota: str = "requests") -> dict[str, Any]:
    """``{"error": {code, message, status[, details]}}``; a 429 names its quota and when to retry."""
    err: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if retry_after is not None:
        metric, quota_id = QUOTAS.get(quota, QUOTAS["requests"])
        violation = {"quotaMetric": f"generativelanguage.googleapis.com/{metric}", "quotaId": quota_id}
        err["details"] = [
            {"@type": QUOTA_FAILURE, "violations": [violation]},
            {"@type": RETRY_INFO, "retryDelay": f"{retry_after:.3f}".rstrip("0").rstrip(".") + "s"},
        ]
    return {"error": err}


def error_response(
    status: int, message: str, retry_after: float | None = None, quota: str = "requests"
) -> web.Response:
    headers = retry_after_headers(retry_after) if retry_after is not None else None
    return json_response(error_body(status, message, retry_after, quota), status=status, headers=headers)

"""Every error leaves as ``{"error": {"code": ..., "message": ...}}`` with the right status."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from catalog_search.exceptions import SearchError

logger = logging.getLogger(__name__)

_DRF_CODES = {
    drf.ParseError: "parse_error",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.Throttled: "throttled",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: our SearchErrors, DRF's own errors and oversized bodies, all as JSON."""
    if isinstance(exc, SearchError):
        if exc.status >= 500:
            logger.warning("catalog_search API: %s", exc.message)
        return error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "request_too_large", str(exc))
    response = drf_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "invalid_request")
    detail = getattr(exc, "detail", response.data)
    message = detail if isinstance(detail, str) else _flatten(detail)
    headers = {k: v for k, v in response.items() if k in ("Retry-After", "Allow")}
    return error_response(response.status_code, code, str(message), headers)


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(v) for v in detail)
    return str(detail)

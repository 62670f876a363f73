"""Errors the public API raises. Each has a stable ``code`` and an HTTP status for the API layer."""

from __future__ import annotations


class SearchError(Exception):
    """Base class: ``code`` is machine-readable, the message tells the caller what to fix."""

    code = "search_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidQuery(SearchError):
    """A parameter is missing, out of range or of the wrong type."""

    code = "invalid_parameter"


class InvalidFilter(InvalidQuery):
    """A filter names an undeclared field or carries a value of the wrong type."""

    code = "invalid_filter"


class InvalidImage(InvalidQuery):
    """The bytes are an image format we accept but cannot be decoded (truncated, corrupt)."""

    code = "invalid_image"


class ImageTooLarge(InvalidImage):
    """Too many bytes or too many pixels (a decompression bomb)."""

    code = "image_too_large"
    status = 413


class UnsupportedImage(InvalidImage):
    """Not an image, or an image format we do not accept."""

    code = "unsupported_media_type"
    status = 415


class NotFound(SearchError):
    """The object asked about does not exist (or its index's queryset leaves it out)."""

    code = "not_found"
    status = 404


class NotIndexed(SearchError):
    """The object exists but has no vectors in the index yet; the message says why (queued, failed, ...)."""

    code = "not_indexed"
    status = 409


class ServiceUnavailable(SearchError):
    """The index or the encoder cannot answer right now."""

    code = "unavailable"
    status = 503


class EncoderUnavailable(ServiceUnavailable):
    """The configured model cannot be loaded; the message names the setting and the path."""

    code = "encoder_unavailable"


class IndexUnavailable(ServiceUnavailable):
    """The search index (database) cannot be queried."""

    code = "index_unavailable"

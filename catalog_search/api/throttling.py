"""Per-client rate limits (DRF throttling; 429 with Retry-After). Rates come from CATALOG_SEARCH."""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from catalog_search import conf


class _Throttle(SimpleRateThrottle):
    setting = ""

    def get_rate(self) -> str | None:
        return getattr(conf.settings(), self.setting)

    def get_cache_key(self, request, view) -> str:
        user = getattr(request, "user", None)
        ident = f"user-{user.pk}" if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TextSearchThrottle(_Throttle):
    scope = "catalog_search_text"
    setting = "THROTTLE_TEXT"


class ImageSearchThrottle(_Throttle):
    scope = "catalog_search_image"
    setting = "THROTTLE_IMAGE"


class SuggestThrottle(_Throttle):
    scope = "catalog_search_suggest"
    setting = "THROTTLE_SUGGEST"


class EventThrottle(_Throttle):
    scope = "catalog_search_events"
    setting = "THROTTLE_EVENTS"

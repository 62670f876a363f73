"""Keep searches and interactions only ``ANALYTICS_RETENTION_DAYS``: the periodic ``purge_analytics`` task
deletes what is older, in batches (a long delete would hold locks and bloat one transaction)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models, transaction
from django.utils import timezone

from catalog_search import conf
from catalog_search.models import SearchEvent, SearchInteraction

BATCH = 10_000


def purge(now: datetime | None = None) -> dict[str, int]:
    """Delete the rows older than the retention; how many of each were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=conf.settings().ANALYTICS_RETENTION_DAYS)
    return {"searches": _older(SearchEvent, cutoff), "interactions": _older(SearchInteraction, cutoff)}


def _older(model: type[models.Model], cutoff: datetime) -> int:
    deleted = 0
    while True:
        with transaction.atomic():
            batch = list(model.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:BATCH])
            if not batch:
                return deleted
            deleted += model.objects.filter(pk__in=batch).delete()[0]

"""Index health per registered model, shared by ``manage.py catalog_search status`` and the admin."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone

from catalog_search import conf, replicas
from catalog_search.models import Encoder as EncoderRow
from catalog_search.models import IndexRun
from catalog_search.registry import SearchIndex, get_indexes

FAILURES_SHOWN = 50


@dataclass
class ModelStatus:
    label: str
    name: str
    total: int  # objects in the index's queryset
    indexed: int  # documents in the index
    pending: int  # outbox rows waiting
    failed: int  # documents indexed without their image, plus objects that could not be indexed
    failures: list[dict[str, str]] = field(default_factory=list)
    last_run: dict[str, Any] | None = None
    last_indexed_at: str | None = None

    @property
    def progress(self) -> float:
        """Share of the current run done (1.0 when nothing is pending)."""
        if not self.pending:
            return 1.0
        run_total = (self.last_run or {}).get("total") or self.total or 1
        return max(0.0, min(1.0, 1 - self.pending / run_total))


def model_status(index: SearchIndex) -> ModelStatus:
    ct = index.content_type.pk
    max_attempts = conf.settings().MAX_ATTEMPTS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE error <> ''), max(indexed_at) "
            "FROM catalog_search_document WHERE content_type_id = %s",
            [ct],
        )
        indexed, image_failures, last_indexed = cursor.fetchone()
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE attempts >= %s) "
            "FROM catalog_search_outbox WHERE content_type_id = %s",
            [max_attempts, ct],
        )
        pending, stuck = cursor.fetchone()
        cursor.execute(
            "(SELECT object_id, error, 'indexed without image' FROM catalog_search_document "
            " WHERE content_type_id = %s AND error <> '' ORDER BY indexed_at DESC LIMIT %s) UNION ALL "
            "(SELECT object_id, COALESCE(NULLIF(last_error, ''), 'gave up after ' || attempts || "
            " ' attempts (the worker stopped while processing it)'), 'not indexed' FROM catalog_search_outbox "
            " WHERE content_type_id = %s AND attempts >= %s ORDER BY updated_at DESC LIMIT %s)",
            [ct, FAILURES_SHOWN, ct, max_attempts, FAILURES_SHOWN],
        )
        failures = [{"object_id": oid, "reason": reason, "state": state} for oid, reason, state in cursor.fetchall()]
    run = IndexRun.objects.filter(content_type_id=ct).order_by("-started_at").first()
    return ModelStatus(
        label=index.label,
        name=str(index.model._meta.verbose_name_plural),
        total=index.get_queryset().count(),
        indexed=int(indexed),
        pending=int(pending),
        failed=int(image_failures) + int(stuck),
        failures=failures,
        last_run=None
        if run is None
        else {
            "kind": run.kind,
            "total": run.total,
            "requested_by": run.requested_by,
            "done": run.done,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "seconds": round(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 1),
        },
        last_indexed_at=last_indexed.isoformat() if last_indexed else None,
    )


def encoder_status() -> list[dict[str, Any]]:
    from catalog_search.indexing.switch import missing_count

    out = []
    for row in EncoderRow.objects.exclude(state=EncoderRow.State.RETIRED).order_by("created_at"):
        entry = {
            "identity": row.identity,
            "model": row.name,
            "dim": row.dim,
            "state": row.state,
            "activated_at": row.activated_at.isoformat() if row.activated_at else None,
        }
        if row.state == EncoderRow.State.BUILDING:
            entry["missing"] = missing_count(row)
        out.append(entry)
    return out


def full_status() -> dict[str, Any]:
    models = [model_status(index) for index in get_indexes()]
    from catalog_search.retrieval import query_cache

    return {
        "models": [{**asdict(m), "progress": round(m.progress, 4)} for m in models],
        "encoders": encoder_status(),
        "configured_model": conf.settings().MODEL,
        "runtime": conf.settings().RUNTIME,
        "query_cache": query_cache.stats(),
        # Each read replica searches may use, checked now, then the primary (docs/architecture.md).
        "search_databases": replicas.statuses(),
        "max_lag_seconds": conf.settings().REPLICA_MAX_LAG_SECONDS,
    }

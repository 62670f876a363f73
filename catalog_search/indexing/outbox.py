"""The outbox: what needs indexing, and the worker-side processing of it.

save/delete --(trigger, same transaction)--> outbox row --(task with ids)--> process() -->
claim rows (lease) -> load objects -> decode images, encode -> one transaction: keep only rows whose
version is unchanged, write or remove their documents, delete those rows.

Correctness rules:
- A row is claimed with a lease (``claimed_until``); a killed worker's rows become claimable again
  when the lease ends, and the sweep re-enqueues them. Nothing is lost.
- The write happens only if the row's ``version`` is still the one read before encoding, checked under
  a row lock in the write transaction. A newer change wins; the older result is discarded and the
  object is processed again with its latest content. Nothing stale survives. Versions come from one
  sequence (migration 0012), so a row deleted (done) and inserted again by a later change never gets a
  version an older claim holds: a worker that wakes after losing its lease cannot mistake it for its own.
- Document rows are unique per object: redelivered or duplicated tasks cannot duplicate anything.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import DatabaseError, InterfaceError, connection, transaction
from django.db.models import F
from django.utils import timezone

from catalog_search import conf
from catalog_search.encoding.encoders import Encoder, get_encoder
from catalog_search.exceptions import EncoderUnavailable
from catalog_search.indexing.documents import Doc, build_doc, remove_objects, write_documents
from catalog_search.indexing.vectors import Vectors, encode_docs, ensure_encoder, write_vectors
from catalog_search.models import Encoder as EncoderRow
from catalog_search.models import IndexRun
from catalog_search.registry import SearchIndex

logger = logging.getLogger(__name__)

MAX_ROUNDS = 3  # re-process objects changed during encoding at most this often per task
RUN_LOCK = 0x63735F72  # advisory lock class (with the content type id) for opening a model's IndexRun


@dataclass
class Claim:
    object_id: str
    action: str
    version: int
    force: bool


@dataclass
class ProcessReport:
    indexed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unchanged content, nothing to encode
    failed: dict[str, str] = field(default_factory=dict)  # object id -> reason (still indexed for text)
    superseded: list[str] = field(default_factory=list)  # changed again while encoding; left for later
    broken: dict[str, str] = field(default_factory=dict)  # could not even be built (a bug in user code)


# Marking -----------------------------------------------------------------------------------------


def mark(index: SearchIndex, object_ids: Iterable[object] | None = None, *, force: bool = False) -> int:
    """Put objects (default: the whole queryset) in the outbox; return how many. ``force`` re-encodes
    even unchanged content. Objects no longer in the queryset are marked too, so they get removed."""
    ct = index.content_type.pk
    queryset = index.get_queryset()
    if object_ids is not None:
        ids = [str(o) for o in object_ids]
        rows = [(oid,) for oid in ids]
    else:
        rows = [(str(pk),) for pk in queryset.values_list("pk", flat=True).iterator(chunk_size=5000)]
        with connection.cursor() as cursor:  # indexed objects that left the queryset: remove them
            cursor.execute("SELECT object_id FROM catalog_search_document WHERE content_type_id = %s", [ct])
            known = {oid for (oid,) in rows}
            rows += [(oid,) for (oid,) in cursor.fetchall() if oid not in known]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 5000):
            chunk = [oid for (oid,) in rows[start : start + 5000]]
            cursor.execute(
                "INSERT INTO catalog_search_outbox (content_type_id, object_id, action, version, force, created_at, "
                "updated_at, attempts, last_error) SELECT %s, o, 'index', nextval('catalog_search_outbox_version'), "
                "%s, now(), now(), 0, '' FROM unnest(%s::text[]) AS o ON CONFLICT (content_type_id, object_id) DO "
                "UPDATE SET version = EXCLUDED.version, force = catalog_search_outbox.force OR EXCLUDED.force, "
                "updated_at = now(), attempts = 0, last_error = ''",
                [ct, force, chunk],
            )
    return len(rows)


def pending_ids(index: SearchIndex, *, limit: int | None = None) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT object_id FROM catalog_search_outbox WHERE content_type_id = %s "
            f"ORDER BY updated_at {'LIMIT %s' if limit else ''}",
            [index.content_type.pk, *([limit] if limit else [])],
        )
        return [oid for (oid,) in cursor.fetchall()]


def pending_count(index: SearchIndex) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM catalog_search_outbox WHERE content_type_id = %s", [index.content_type.pk])
        return int(cursor.fetchone()[0])


# Claiming ----------------------------------------------------------------------------------------


def claim(index: SearchIndex, object_ids: list[str], *, reclaim: bool = False) -> list[Claim]:
    """Lease the outbox rows of ``object_ids`` that nobody else holds (``reclaim``: rows we hold)."""
    lease = conf.settings().OUTBOX_LEASE_SECONDS
    condition = "" if reclaim else "AND (claimed_until IS NULL OR claimed_until < now())"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE catalog_search_outbox SET claimed_until = now() + make_interval(secs => %s), "
            f"attempts = attempts + 1 WHERE content_type_id = %s AND object_id = ANY(%s) {condition} "
            f"RETURNING object_id, action, version, force",
            [lease, index.content_type.pk, object_ids],
        )
        return [Claim(*row) for row in cursor.fetchall()]


@contextlib.contextmanager
def lease_renewed(index: SearchIndex, object_ids: list[str]) -> Iterator[None]:
    """Renew the lease of ``object_ids`` every third of OUTBOX_LEASE_SECONDS while the body runs: a
    heartbeat from a thread of its own, on its own connection, so that the lease can be short (a killed
    worker's rows are taken over soon) and still outlast a long batch. Rows the write transaction holds
    are skipped (SKIP LOCKED: it is about to delete them), so the two never wait on each other."""
    if not object_ids:  # nothing claimed (a redelivered task): no heartbeat thread
        yield
        return
    lease = conf.settings().OUTBOX_LEASE_SECONDS
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(lease / 3):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "UPDATE catalog_search_outbox SET claimed_until = now() + make_interval(secs => %s) "
                        "WHERE id IN (SELECT id FROM catalog_search_outbox WHERE content_type_id = %s "
                        "AND object_id = ANY(%s) AND claimed_until IS NOT NULL FOR UPDATE SKIP LOCKED)",
                        [lease, index.content_type.pk, object_ids],
                    )
        except DatabaseError as exc:  # the lease then ends on time; the batch itself goes on
            logger.warning("catalog_search: could not renew the lease of a batch: %s", exc)
        finally:
            connection.close()  # this thread's own connection

    heart = threading.Thread(target=beat, name="catalog-search-lease", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join()


def release(index: SearchIndex, object_ids: list[str], error: str = "") -> None:
    """Give claimed rows back (after an error), so a retry or the sweep can take them."""
    if not object_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE catalog_search_outbox SET claimed_until = NULL, last_error = %s, enqueued_at = NULL "
            "WHERE content_type_id = %s AND object_id = ANY(%s)",
            [error[:2000], index.content_type.pk, object_ids],
        )


def _current(cursor, index: SearchIndex, claims: list[Claim]) -> set[str]:
    """Lock the claimed rows; return the object ids whose version is still the one we read."""
    cursor.execute(
        "SELECT object_id, version FROM catalog_search_outbox WHERE content_type_id = %s AND object_id = ANY(%s) "
        "ORDER BY object_id FOR UPDATE",
        [index.content_type.pk, [c.object_id for c in claims]],
    )
    versions = dict(cursor.fetchall())
    return {c.object_id for c in claims if versions.get(c.object_id) == c.version}


# Encoders ------------------------------------------------------------------------------------------


def target_encoders() -> list[tuple[EncoderRow, Encoder]]:
    """Encoders that must get vectors: the configured one and, during a model switch, also the active
    one (search still uses it until the new index is complete). Empty if the configured model cannot be
    loaded: keyword indexing goes on, and the sweep adds vectors once the model is there."""
    try:
        configured = get_encoder()
    except EncoderUnavailable as exc:
        logger.warning("catalog_search: indexing without vectors: %s", exc.message)
        return []
    row = ensure_encoder(configured)
    targets = [(row, configured)]
    if row.state != EncoderRow.State.ACTIVE:
        active = EncoderRow.objects.filter(state=EncoderRow.State.ACTIVE).first()
        if active is not None:
            try:
                targets.insert(0, (active, get_encoder(active.name)))
            except EncoderUnavailable as exc:
                logger.warning("catalog_search: cannot load the active encoder %s: %s", active.name, exc.message)
    return targets


def _existing(index: SearchIndex, object_ids: list[str]) -> dict[str, tuple[int, str, str, set[int]]]:
    """object id -> (document id, content hash, error, ids of encoders that have its vectors)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.object_id, d.id, d.content_hash, d.error, "
            "ARRAY(SELECT e.encoder_id FROM catalog_search_embedding e WHERE e.document_id = d.id) "
            "FROM catalog_search_document d WHERE d.content_type_id = %s AND d.object_id = ANY(%s)",
            [index.content_type.pk, object_ids],
        )
        return {oid: (doc_id, h, err, set(encoders)) for oid, doc_id, h, err, encoders in cursor.fetchall()}


# Processing ----------------------------------------------------------------------------------------


def process(index: SearchIndex, object_ids: list[str]) -> ProcessReport:
    """Index or remove the given objects if they are in the outbox. Idempotent; safe to run twice."""
    report = ProcessReport()
    started = timezone.now()
    claims = claim(index, [str(o) for o in object_ids])
    with lease_renewed(index, [c.object_id for c in claims]):
        for _ in range(MAX_ROUNDS):
            if not claims:
                break
            try:
                superseded = _process_round(index, claims, report)
            except Exception as exc:
                release(index, [c.object_id for c in claims], f"{type(exc).__name__}: {exc}")
                raise
            claims = claim(index, superseded, reclaim=True) if superseded else []
    if claims:  # still changing: let the sweep or the next task take them
        report.superseded.extend(c.object_id for c in claims)
        release(index, [c.object_id for c in claims])
    if report.broken:
        for object_id, reason in report.broken.items():
            release(index, [object_id], reason)
    _record_run(index, len(report.indexed) + len(report.removed) + len(report.skipped), started=started)
    return report


def _process_round(index: SearchIndex, claims: list[Claim], report: ProcessReport) -> list[str]:
    """One pass: build, encode what is missing or changed, write what is still current."""
    targets = target_encoders()
    pk = index.model._meta.pk
    wanted = [c for c in claims if c.action == "index"]
    instances = {
        str(obj.pk): obj
        for obj in index.with_related(index.get_queryset()).filter(pk__in=[pk.to_python(c.object_id) for c in wanted])
    }
    existing = _existing(index, [c.object_id for c in wanted])
    changed: list[Doc] = []  # new or different content: rewrite the document and all vectors
    needs: dict[int, list[Doc]] = {row.pk: [] for row, _ in targets}  # encoder id -> docs lacking its vectors
    for c in wanted:
        instance = instances.get(c.object_id)
        if instance is None:
            continue
        try:
            doc = build_doc(index, instance, with_image=False)
            old = existing.get(c.object_id)
            fresh = c.force or not old or old[1] != doc.content_hash or bool(old[2])
            missing = [row.pk for row, _ in targets if fresh or row.pk not in old[3]]
            if fresh or missing:
                doc = build_doc(index, instance, with_image=bool(missing))
                if fresh or doc.error:  # a newly found image problem is recorded on the document
                    changed.append(doc)
                for encoder_id in missing:
                    needs[encoder_id].append(doc)
        except (DatabaseError, InterfaceError):
            raise
        except Exception as exc:  # a bug in get_text() or a field: this object only, never the batch
            report.broken[c.object_id] = f"{type(exc).__name__}: {exc}"
    vectors = [encode_docs(needs[row.pk], row, encoder) for row, encoder in targets if needs[row.pk]]
    gone = [c.object_id for c in claims if c.object_id not in instances]  # deleted or left the queryset
    done = [c for c in claims if c.object_id not in report.broken]

    with transaction.atomic(), connection.cursor() as cursor:
        current = _current(cursor, index, done)
        ids = write_documents(index, [d for d in changed if d.object_id in current])
        ids.update({oid: existing[oid][0] for oid in current if oid in existing and oid not in ids})
        for entry in vectors:
            write_vectors(cursor, index.content_type.pk, _only(entry, current), ids)
        removed = [oid for oid in gone if oid in current]
        remove_objects(index, removed)
        cursor.execute(
            "DELETE FROM catalog_search_outbox WHERE content_type_id = %s AND object_id = ANY(%s)",
            [index.content_type.pk, sorted(current)],
        )
    touched = {d.object_id: d for ds in [changed, *needs.values()] for d in ds}
    for oid, doc in touched.items():
        if oid in current:
            report.indexed.append(oid)
            if doc.error:
                report.failed[oid] = doc.error
    report.removed.extend(removed)
    report.skipped.extend(
        c.object_id for c in wanted if c.object_id in current and c.object_id not in touched and c.object_id not in gone
    )
    return [c.object_id for c in done if c.object_id not in current]


def _only(vectors: Vectors, keep: set[str]) -> Vectors:
    rows = [i for i, oid in enumerate(vectors.object_ids) if oid in keep]
    return Vectors(
        vectors.encoder_row,
        [vectors.object_ids[i] for i in rows],
        [vectors.image[i] for i in rows],
        [vectors.text[i] for i in rows],
    )


def _record_run(index: SearchIndex, done: int, *, started) -> None:
    """Count ``done`` objects in the model's open IndexRun (opening an "updates" run for saved changes when
    none is open), and close open runs once its outbox is empty."""
    ct = index.content_type.pk
    with transaction.atomic():
        # One open run per model even with several workers: they take turns here.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [RUN_LOCK, ct])
        open_runs = IndexRun.objects.filter(content_type_id=ct, finished_at__isnull=True)
        if done:
            if not open_runs.exists():
                IndexRun.objects.create(content_type_id=ct, kind="updates", requested_by="worker", started_at=started)
            latest = open_runs.order_by("-started_at").values_list("pk", flat=True)[:1]
            IndexRun.objects.filter(pk__in=list(latest)).update(done=F("done") + done)
        if open_runs.exists() and not _has_pending(ct):
            open_runs.update(finished_at=timezone.now())


def _has_pending(content_type_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM catalog_search_outbox WHERE content_type_id = %s)", [content_type_id]
        )
        return bool(cursor.fetchone()[0])


# Sweeping ------------------------------------------------------------------------------------------


def stale_ids(index: SearchIndex, limit: int = 5000) -> list[str]:
    """Outbox rows that no task holds and none was queued for recently (broker was down, worker died)."""
    after = conf.settings().SWEEP_AFTER_SECONDS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT object_id FROM catalog_search_outbox WHERE content_type_id = %s "
            "AND (claimed_until IS NULL OR claimed_until < now()) AND attempts < %s "
            "AND updated_at < now() - make_interval(secs => %s) "
            "AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => %s)) "
            "ORDER BY updated_at LIMIT %s",
            [index.content_type.pk, conf.settings().MAX_ATTEMPTS, after, after, limit],
        )
        return [oid for (oid,) in cursor.fetchall()]


def unqueued_ids(index: SearchIndex, limit: int = 5000) -> list[str]:
    """Outbox rows no task holds and none was queued for (written by a trigger, not by a save's hook)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT object_id FROM catalog_search_outbox WHERE content_type_id = %s AND enqueued_at IS NULL "
            "AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY updated_at LIMIT %s",
            [index.content_type.pk, limit],
        )
        return [oid for (oid,) in cursor.fetchall()]


def mark_enqueued(index: SearchIndex, object_ids: list[str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE catalog_search_outbox SET enqueued_at = now() WHERE content_type_id = %s AND object_id = ANY(%s)",
            [index.content_type.pk, object_ids],
        )


def pending_among(index: SearchIndex, object_ids: list[str]) -> int:
    """How many of ``object_ids`` are still in the outbox."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM catalog_search_outbox WHERE content_type_id = %s AND object_id = ANY(%s)",
            [index.content_type.pk, object_ids],
        )
        return int(cursor.fetchone()[0])


def mark_missing_vectors(index: SearchIndex, encoder_row: EncoderRow) -> list[str]:
    """Queue indexed objects that have no vectors from ``encoder_row`` and are not queued already
    (indexed while the model could not be loaded, or during a switch)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO catalog_search_outbox (content_type_id, object_id, action, version, force, created_at, "
            "updated_at, attempts, last_error) SELECT d.content_type_id, d.object_id, 'index', "
            "nextval('catalog_search_outbox_version'), false, now(), now(), 0, '' FROM catalog_search_document d WHERE d.content_type_id = %s AND NOT EXISTS (SELECT 1 FROM "
            "catalog_search_embedding e WHERE e.document_id = d.id AND e.encoder_id = %s) "
            "ON CONFLICT (content_type_id, object_id) DO NOTHING RETURNING object_id",
            [index.content_type.pk, encoder_row.pk],
        )
        return [oid for (oid,) in cursor.fetchall()]

"""What query understanding reads, written by the indexing pipeline: the query fields' values
(``FieldValue``) and the catalog's spellings (``Spelling``).

A batch of documents records its objects' values and words in the transaction that writes the documents
(``record``), so a new product type or brand is recognised as soon as its first product is indexed. Counts
are made exact, and values no indexed object has any more dropped, by the periodic sweep (``refresh``): one
grouped count per query field over the index's queryset, only when the corpus changed since the last one.
Spellings are never deleted one by one: a word whose term has no document is skipped by the reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, transaction
from django.db.models import Count

from catalog_search import values
from catalog_search.analysis import get_analyzer
from catalog_search.models import FieldValue, Spelling
from catalog_search.registry import SearchIndex

MAX_VALUE_LENGTH = 255  # longer "values" are text, not something a shopper names
_counted: dict[int, tuple] = {}  # content type -> the corpus state its values were last counted at


def _as_value(raw: object) -> str | None:
    text = "" if raw is None else str(raw).strip()
    return text if 0 < len(text) <= MAX_VALUE_LENGTH else None


def object_values(index: SearchIndex, object_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """field -> value -> how many of ``object_ids`` have it (relations followed; one query)."""
    fields = [f.name for f in index.understood_fields]
    if not object_ids or not fields:
        return {}
    pks = [index.model._meta.pk.to_python(o) for o in object_ids]
    seen: set[tuple[object, str, str]] = set()  # a to-many relation repeats an object's row per related row
    for row in index.model._base_manager.filter(pk__in=pks).values_list("pk", *fields):
        seen.update(
            (row[0], name, value) for name, raw in zip(fields, row[1:], strict=True) if (value := _as_value(raw))
        )
    found: dict[str, dict[str, int]] = {}
    for _, name, value in seen:
        counts = found.setdefault(name, {})
        counts[value] = counts.get(value, 0) + 1
    return found


def spellings(texts: Iterable[str]) -> dict[str, str]:
    """word -> index term of the words of ``texts`` that hold a letter (numbers are not misspelled)."""
    analyzer = get_analyzer()
    words = {w for text in texts for w in analyzer.tokens(text) if len(w) > 1 and not w.isdigit()}
    ordered = sorted(words)
    return dict(zip(ordered, analyzer.stem(ordered), strict=True))


def record(cursor, index: SearchIndex, object_ids: Sequence[str], texts: Sequence[str]) -> None:
    """Add the values and words of a batch being indexed (inside the caller's transaction)."""
    ct = index.content_type.pk
    found = object_values(index, object_ids)
    rows = [(f, v, n) for f, counts in found.items() for v, n in counts.items()]
    if rows:
        fields, names, counts = zip(*rows, strict=True)
        cursor.execute(
            "INSERT INTO catalog_search_fieldvalue (content_type_id, field, value, count) "
            "SELECT %s, f, v, n FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS x(f, v, n) "
            "ON CONFLICT (content_type_id, field, value) DO UPDATE "
            "SET count = GREATEST(catalog_search_fieldvalue.count, EXCLUDED.count)",
            [ct, list(fields), list(names), list(counts)],
        )
        _forget(ct)
    words = spellings(texts)
    if words:
        cursor.execute(
            "INSERT INTO catalog_search_spelling (content_type_id, word, term) "
            "SELECT %s, w, t FROM unnest(%s::text[], %s::text[]) AS x(w, t) ON CONFLICT DO NOTHING",
            [ct, list(words), list(words.values())],
        )


def _forget(ct: int) -> None:
    """This process reads the values again: now (its own connection sees them) and after the commit."""
    values.forget(ct)
    transaction.on_commit(lambda: values.forget(ct))


def _corpus_state(index: SearchIndex) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), max(indexed_at) FROM catalog_search_document WHERE content_type_id = %s",
            [index.content_type.pk],
        )
        return (*cursor.fetchone(), tuple(f.name for f in index.understood_fields))


def recount(index: SearchIndex) -> int:
    """Replace the index's values by an exact count over its queryset; the number of values."""
    ct = index.content_type.pk
    rows: list[FieldValue] = []
    for query_field in index.understood_fields:
        grouped = index.get_queryset().values_list(query_field.name).annotate(n=Count("pk"))
        merged: dict[str, int] = {}
        for raw, n in grouped.order_by():
            value = _as_value(raw)
            if value is not None:
                merged[value] = merged.get(value, 0) + n
        rows += [FieldValue(content_type_id=ct, field=query_field.name, value=v, count=n) for v, n in merged.items()]
    with transaction.atomic():
        FieldValue.objects.filter(content_type_id=ct).delete()
        FieldValue.objects.bulk_create(rows, batch_size=2000)
    _forget(ct)
    return len(rows)


def fill_spellings(index: SearchIndex, *, chunk: int = 2000) -> int:
    """The spellings of every object of the index (an index built before spellings were recorded)."""
    ct = index.content_type.pk
    texts: list[str] = []
    added = 0
    queryset = index.with_related(index.get_queryset()).order_by("pk")
    for instance in queryset.iterator(chunk_size=chunk):
        texts.append(index.get_text(instance))
        if len(texts) >= chunk:
            added += _write_spellings(ct, texts)
            texts = []
    return added + _write_spellings(ct, texts)


def _write_spellings(ct: int, texts: list[str]) -> int:
    words = spellings(texts)
    Spelling.objects.bulk_create(
        [Spelling(content_type_id=ct, word=w, term=t) for w, t in words.items()], ignore_conflicts=True
    )
    return len(words)


def refresh(indexes: Iterable[SearchIndex]) -> str:
    """Sweep step: recount the values of each index whose corpus changed since its last count, and fill
    the spellings of an index that has documents but none (built by an older version)."""
    done = []
    for index in indexes:
        if not index.understood_fields and not _needs_spellings(index):
            continue
        state = _corpus_state(index)
        if _needs_spellings(index) and state[0]:
            done.append(f"{index.label}: {fill_spellings(index)} spellings")
        if index.understood_fields and _counted.get(index.content_type.pk) != state:
            done.append(f"{index.label}: {recount(index)} values")
            _counted[index.content_type.pk] = state
    return "; ".join(done) or "current"


def _needs_spellings(index: SearchIndex) -> bool:
    return not Spelling.objects.filter(content_type_id=index.content_type.pk).exists()

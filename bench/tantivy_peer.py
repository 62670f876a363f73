"""tantivy (the Python binding of the Lucene-like Rust engine) on the same documents and queries as our
keyword signal, for bench/bm25_scale.py: the peer our times and sizes are reported against.

The same documents: each indexed document's analyzed terms, each repeated its term frequency times (the
demo's field weights are integers, so the term frequencies and lengths are BM25's own), read from the
database's postings and indexed with tantivy's whitespace tokenizer, with the product's category as a
raw term for the filtered mix. The same queries: the analyzed terms OR-ed (tantivy's boolean "should"),
top ``limit``; a filter is a required category term scored 0. tantivy keeps document lengths at one byte
(Lucene's norms), so its scores are close to, not equal to, ours: a timing peer, not an oracle.
The index is built once per database, in ``<database folder>/tantivy``, and reused.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

HEAP = 400_000_000


def _schema():
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("body", stored=False, tokenizer_name="whitespace", index_option="freq")
    builder.add_text_field("category", stored=False, tokenizer_name="raw", index_option="basic")
    return builder.build()


def ensure_index(folder: Path, ct: int) -> tuple[Any, dict[str, Any]]:
    """The tantivy index of the database the Django connection points at, built into ``folder`` once."""
    import tantivy

    done = folder / "built.txt"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        started = time.perf_counter()
        count = _build(tantivy.Index(_schema(), path=str(folder)), ct)
        done.write_text(f"{count} {time.perf_counter() - started:.1f}\n")
    count, seconds = done.read_text().split()
    index = tantivy.Index.open(str(folder))
    index.reload()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != "built.txt")
    return index, {"documents": int(count), "build_s": float(seconds), "bytes": size}


def _build(index, ct: int) -> int:
    import tantivy
    from django.db import connection, transaction

    writer = index.writer(heap_size=HEAP, num_threads=1)
    count = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DECLARE docs NO SCROLL CURSOR FOR SELECT string_agg(repeat(p.term || ' ', p.tf::int), ''), "
            "min(s.category) FROM catalog_search_posting p JOIN shop_product s ON s.id = p.object_id::bigint "
            "WHERE p.content_type_id = %s GROUP BY p.document_id",
            [ct],
        )
        while True:
            cursor.execute("FETCH 20000 FROM docs")
            rows = cursor.fetchall()
            if not rows:
                break
            for body, category in rows:
                writer.add_document(tantivy.Document(body=body, category=category))
            count += len(rows)
            print(f"\r  tantivy: {count} documents", end="", file=sys.stderr, flush=True)
    writer.commit()
    writer.wait_merging_threads()
    print(file=sys.stderr)
    return count


def query(index, terms: list[str], category: str | None):
    """Our query as tantivy's: the terms OR-ed, with the category required (scored 0) when filtered."""
    import tantivy

    schema = index.schema
    words = tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", t)) for t in sorted(set(terms))]
    )
    if category is None:
        return words
    required = tantivy.Query.const_score_query(tantivy.Query.term_query(schema, "category", category), 0.0)
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, words), (tantivy.Occur.Must, required)])


def search(searcher, prepared, limit: int) -> int:
    """Run one prepared query; the number of hits (so the work is not optimized away)."""
    return len(searcher.search(prepared, limit).hits)

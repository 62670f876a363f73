"""BM25 over the stored postings and statistics, in one SQL query with the filters inside it.

Variant (Lucene's, as in Elasticsearch and bm25s' "lucene"), for query terms t (distinct):

    score(D) = sum_t  idf(t) * tf(t,D) / (tf(t,D) + k1 * (1 - b + b * |D| / avgdl))
    idf(t)   = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

tf is the field-weighted term frequency and |D| the field-weighted length; N, df and avgdl are per
content type (each registered model is its own corpus).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from catalog_search import conf


@dataclass(frozen=True)
class Hit:
    document_id: int
    object_id: str
    score: float


_SCORE = "ln(1 + (s.n - t.df + 0.5) / (t.df + 0.5)) * p.tf / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * d.length / s.avgdl))"


def _sql(select: str, filter_sql: str | None, tail: str) -> str:
    where = f"AND d.object_id IN ({filter_sql})" if filter_sql else ""
    return f"""
        WITH s AS (
            SELECT doc_count::float8 AS n, total_length / GREATEST(doc_count, 1) AS avgdl
            FROM catalog_search_corpusstat WHERE content_type_id = %(ct)s AND doc_count > 0
        )
        SELECT {select}
        FROM s
        JOIN catalog_search_termstat t ON t.content_type_id = %(ct)s AND t.term = ANY(%(terms)s)
        JOIN catalog_search_posting p ON p.term = t.term
        JOIN catalog_search_document d ON d.id = p.document_id AND d.content_type_id = %(ct)s
        WHERE true {where}
        {tail}
    """


def _params(content_type_id: int, terms: list[str], filter_params: list, limit: int | None = None) -> dict:
    params = {"ct": content_type_id, "terms": terms, "k1": conf.get("BM25_K1"), "b": conf.get("BM25_B")}
    params.update({f"f{i}": v for i, v in enumerate(filter_params)})
    if limit is not None:
        params["limit"] = limit
    return params


def _named(filter_sql: tuple[str, list] | None, prefix: str = "f") -> tuple[str | None, list]:
    """Turn the ORM's positional ``%s`` into named ``%(f0)s`` placeholders so its SQL nests in a
    named-parameter query; the caller binds ``{prefix}{i}`` to ``params[i]``."""
    if filter_sql is None:
        return None, []
    sql, params = filter_sql
    sql = sql.replace("%%", "\x00")
    parts = sql.split("%s")
    named = parts[0] + "".join(f"%({prefix}{i})s{part}" for i, part in enumerate(parts[1:]))
    return named.replace("\x00", "%%"), params


def search(content_type_id: int, terms: list[str], filter_sql: tuple[str, list] | None, limit: int) -> list[Hit]:
    """The ``limit`` best documents for ``terms`` among those passing the filter, best first."""
    terms = sorted(set(terms))
    if not terms:
        return []
    sql_filter, filter_params = _named(filter_sql)
    sql = _sql(
        f"d.id, d.object_id, SUM({_SCORE}) AS score",
        sql_filter,
        "GROUP BY d.id, d.object_id ORDER BY score DESC, d.id LIMIT %(limit)s",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(content_type_id, terms, filter_params, limit))
        return [Hit(doc_id, oid, float(score)) for doc_id, oid, score in cursor.fetchall()]


def matched_object_ids_sql(
    content_type_id: int, terms: list[str], filter_sql: tuple[str, list] | None
) -> tuple[str, dict]:
    """SQL (named params) selecting the object ids of every document matching any term (facets)."""
    sql_filter, filter_params = _named(filter_sql)
    sql = _sql("DISTINCT d.object_id", sql_filter, "")
    return sql, _params(content_type_id, sorted(set(terms)), filter_params)


def explain_terms(content_type_id: int, terms: list[str], document_ids: list[int]) -> dict[int, dict[str, float]]:
    """Per-term BM25 contributions for the given documents (for ``explain``)."""
    terms = sorted(set(terms))
    if not terms or not document_ids:
        return {}
    sql = _sql(f"d.id, t.term, {_SCORE}", None, "AND d.id = ANY(%(ids)s)")
    params = _params(content_type_id, terms, [])
    params["ids"] = document_ids
    out: dict[int, dict[str, float]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for doc_id, term, score in cursor.fetchall():
            out.setdefault(doc_id, {})[term] = float(score)
    return out

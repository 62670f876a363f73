"""BM25 over the stored postings and statistics, in one SQL query with the filters inside it.

Variant (Lucene's, as in Elasticsearch and bm25s' "lucene"), for query terms t (distinct):

    score(D) = sum_t  idf(t) * tf(t,D) / (tf(t,D) + k1 * (1 - b + b * |D| / avgdl))
    idf(t)   = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

tf is the field-weighted term frequency and |D| the field-weighted length; N, df and avgdl are per
content type (each registered model is its own corpus).

Every number a score needs per document (tf, |D|, object id) sits in the posting primary key's INCLUDE
columns, so the query reads the query terms' index entries and nothing else from the index tables.

Which documents match (``Match``): by default every document containing any query term (partial matches
rank below full ones). ``CATALOG_SEARCH["MINIMUM_SHOULD_MATCH"]`` (Elasticsearch's ``minimum_should_match``:
a count or a percentage of the query's terms that the catalog has) asks for more: a shopper typing
"everyday chocolate roller skates" may want roller skates, not the quarter of the catalog whose
description says "everyday". Every posting of the terms is still read and summed (a sequential read of the
index: cheaper than probing the common terms' postings for the rare terms' documents, docs/benchmarks.md);
what follows (shop rows, facet counts, ranking) reads only the matching documents. The scores are BM25 as
above, over the matched terms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from catalog_search import conf, databases
from catalog_search.retrieval.filters import IdList, Passing, Restriction
from catalog_search.sql import int_array


@dataclass(frozen=True)
class Hit:
    document_id: int
    object_id: str
    score: float


# Per posting, in float8 only: idf is computed once per query term (in ``t``), and k1 and b are bound as
# float8 (a literal 1.2 would be numeric, and numeric arithmetic per posting doubled the query's time).
_SCORE = "t.idf * p.tf / (p.tf + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * p.length / s.avgdl))"

_RULE = re.compile(r"^(-?)(\d+)(%?)$")


def parse_rule(rule: int | str) -> tuple[bool, int, bool]:
    """(missing, number, percent) of a MINIMUM_SHOULD_MATCH value: ``2`` at least two terms, ``-1`` all but
    one, ``"75%"`` three quarters of them (rounded down), ``"-25%"`` all but a quarter (rounded down).
    ValueError if it is none of those."""
    text = str(rule).strip() if isinstance(rule, int | str) and not isinstance(rule, bool) else ""
    found = _RULE.match(text)
    if not found or (found.group(3) and int(found.group(2)) > 100):
        raise ValueError(f"{rule!r} is not a count (2, -1) or a percentage ('75%', '-25%') of the query's terms")
    return found.group(1) == "-", int(found.group(2)), bool(found.group(3))


def required_terms(n: int, rule: int | str | None = None) -> int:
    """How many of a query's ``n`` terms a document must contain to match: the rule (default
    MINIMUM_SHOULD_MATCH) applied as Elasticsearch does, at least 1 and at most ``n``."""
    missing, number, percent = parse_rule(conf.settings().MINIMUM_SHOULD_MATCH if rule is None else rule)
    count = math.floor(n * number / 100) if percent else number
    return max(1, min(n, n - count if missing else count))


class Presence:
    """Which terms the documents of each of a search's content types contain (a TermStat row, df > 0).

    Query understanding, expansion and the keyword signal each ask about the query's words; one search
    shares one ``Presence``, so each term is looked up once (one statement per batch of new terms), not
    once per stage (docs/benchmarks.md, *Query understanding cost at 100k*)."""

    def __init__(self, content_types: Sequence[int]) -> None:
        self.content_types = sorted(set(content_types))
        self._in: dict[str, frozenset[int]] = {}  # term -> the content types with a document containing it
        self._some: dict[str, bool] = {}  # recorded by a caller: whether some content type has the term

    def record(self, terms: Sequence[str], present: Collection[str]) -> None:
        """What a caller looked up itself over all of the content types: ``present``, those of ``terms``
        some document has (suggestions' own statement)."""
        self._some.update((term, term in present) for term in terms)

    def known(self, terms: Sequence[str], content_type: int | None = None) -> set[str]:
        """Those of ``terms`` some document of the content types (or of ``content_type``) contains."""
        if content_type is None:
            self._look_up([t for t in terms if t not in self._some])
            return {t for t in terms if self._some.get(t) or self._in.get(t)}
        if content_type not in self.content_types:
            return Presence([content_type]).known(terms, content_type)
        self._look_up(terms)
        return {t for t in terms if content_type in self._in.get(t, ())}

    def _look_up(self, terms: Sequence[str]) -> None:
        missing = sorted({t for t in terms if t not in self._in})
        if not missing or not self.content_types:
            return
        with databases.connection().cursor() as cursor:
            cursor.execute(
                "SELECT term, content_type_id FROM catalog_search_termstat "
                "WHERE term = ANY(%s) AND content_type_id = ANY(%s) AND df > 0",
                [missing, self.content_types],
            )
            rows = cursor.fetchall()
        found: dict[str, set[int]] = {}
        for term, content_type in rows:
            found.setdefault(term, set()).add(content_type)
        self._in.update((term, frozenset(found.get(term, ()))) for term in missing)


def known_terms(terms: Sequence[str], content_types: Sequence[int]) -> set[str]:
    """Those of ``terms`` that some document of ``content_types`` contains (one look-up)."""
    return Presence(content_types).known(terms)


@dataclass(frozen=True)
class Match:
    """The documents a keyword query matches: those containing at least ``required`` of ``terms`` (its
    distinct terms), or, with ``groups`` (a group number per term), terms of at least ``required`` groups."""

    content_type_id: int
    terms: list[str]
    required: int = 1
    groups: list[int] | None = None


def match(
    content_type_id: int,
    terms: list[str],
    groups: dict[str, int] | None = None,
    *,
    presence: Presence | None = None,
) -> Match:
    """The ``Match`` of ``terms`` in a content type's corpus under MINIMUM_SHOULD_MATCH (one look-up of the
    terms' document frequencies, skipped when one term is enough whatever their number).

    ``groups`` (term -> group) makes the rule count groups instead of terms: query expansion puts a
    shopper's word and the catalog words searched for it in one group, so "ruby pocketbook" expanded
    to red, cherry, wallet and purse asks for the words of 75% of two groups (either), as "red wallet"
    would, not for three of those four terms. ``presence``: the search's term look-ups, if it has some."""
    terms = sorted(set(terms))
    numbers = [groups[t] for t in terms] if groups and len({groups[t] for t in terms}) < len(terms) else None
    if required_terms(len(set(numbers or terms))) <= 1:  # the rule never asks for more when fewer are present
        return Match(content_type_id, terms, 1, numbers)
    found = (presence or Presence([content_type_id])).known(terms, content_type_id)
    present = len({numbers[i] for i, t in enumerate(terms) if t in found}) if numbers else len(found)
    return Match(content_type_id, terms, required_terms(present) if present else 1, numbers)


def _restricted(restriction: Restriction | None) -> tuple[str, str, dict]:
    """(join, condition, params) restricting the postings to the objects of ``restriction``."""
    if restriction is None:
        return "", "", {}
    if isinstance(restriction, IdList):
        condition, params = restriction.member("p.object_id")
        return "", f"AND {condition}", params
    # A large filter: joined as its distinct ids, fenced (OFFSET 0). As `p.object_id IN (<filter>)` it was
    # planned, with stale visibility statistics, as a nested loop reading the postings once per filtered
    # object (docs/benchmarks.md).
    sql, params = restriction.select()
    return f"JOIN (SELECT DISTINCT fx.oid FROM ({sql}) AS fx(oid) OFFSET 0) fx ON fx.oid = p.object_id", "", params


def _sql(
    select: str, restriction: Restriction | None, match: Match, *, grouped: bool, where: str = "", tail: str = ""
) -> tuple[str, dict]:
    """The postings of ``match``'s terms (of its matching documents) joined with their idf: ``select`` per
    posting, or per document when ``grouped`` (always when a minimum of terms must match); with its params."""
    join, condition, params = _restricted(restriction)
    group = "GROUP BY p.document_id, p.object_id" if grouped or match.required > 1 else ""
    if match.required > 1:
        # One posting per (term, document); with groups, terms of one group count once.
        group += f" HAVING count({'DISTINCT t.grp' if match.groups else '*'}) >= %(required)s"
    terms = (
        "s CROSS JOIN unnest(%(terms)s::text[], %(groups)s::int[]) AS q(term, grp) "
        "JOIN catalog_search_termstat ts ON ts.content_type_id = %(ct)s AND ts.term = q.term"
        if match.groups
        else "s JOIN catalog_search_termstat ts ON ts.content_type_id = %(ct)s AND ts.term = ANY(%(terms)s)"
    )
    sql = f"""
        WITH s AS (
            SELECT doc_count::float8 AS n, total_length / GREATEST(doc_count, 1) AS avgdl
            FROM catalog_search_corpusstat WHERE content_type_id = %(ct)s AND doc_count > 0
        ), t AS (
            SELECT ts.term, {"q.grp, " if match.groups else ""}ln(1 + (s.n - ts.df + 0.5::float8) / (ts.df + 0.5::float8)) AS idf
            FROM {terms}
        )
        SELECT {select}
        FROM s, t
        JOIN catalog_search_posting p ON p.term = t.term AND p.content_type_id = %(ct)s {join}
        WHERE true {where} {condition}
        {group} {tail}
    """
    return sql, {**_params(match), **params}


def _params(match: Match) -> dict:
    settings = conf.settings()
    return {
        "ct": match.content_type_id,
        "terms": match.terms,
        "k1": settings.BM25_K1,
        "b": settings.BM25_B,
        "required": match.required,
        "groups": match.groups,
    }


def search(
    content_type_id: int,
    terms: list[str] | Match,
    restriction: Restriction | None,
    limit: int,
    *,
    passing: Passing | None = None,
) -> list[Hit]:
    """The ``limit`` best matching documents for ``terms`` (or their ``Match``) among the objects of
    ``restriction``, best first.

    With ``passing`` (object ids -> those passing the filter; the engine gives it for a filter that
    keeps many objects), the best unfiltered matches are scored first and only they are checked against
    the filter, a primary-key lookup each, instead of joining every match with every row the filter keeps.
    When too few of them pass, the filter goes inside the query as usual."""
    found = terms if isinstance(terms, Match) else match(content_type_id, terms)
    if not found.terms:
        return []
    if passing is not None and restriction is not None:
        depth = max(limit * 5, 1000)
        best = _top(found, None, depth)
        allowed = passing([hit.object_id for hit in best])
        kept = [hit for hit in best if hit.object_id in allowed]
        if len(kept) >= limit or len(best) < depth:  # enough, or every match was checked
            return kept[:limit]
    return _top(found, restriction, limit)


# Ties are broken by document id on the score rounded to 1e-9 (in float8: rounding every group as numeric
# would cost more): the sum of a document's per-term scores can differ in its last bit between query plans,
# which must not reorder equal scores.
TOP_TAIL = f"ORDER BY round(SUM({_SCORE}) * 1e9) DESC, p.document_id LIMIT %(limit)s"
SCORED = f"p.document_id, p.object_id, SUM({_SCORE}) AS score"


def _top(match: Match, restriction: Restriction | None, limit: int) -> list[Hit]:
    sql, params = _sql(SCORED, restriction, match, grouped=True, tail=TOP_TAIL)
    with databases.connection().cursor() as cursor:
        cursor.execute(sql, {**params, "limit": limit})
        return [Hit(doc_id, oid, float(score)) for doc_id, oid, score in cursor.fetchall()]


def scored_sql(match: Match, restriction: Restriction | None) -> tuple[str, dict]:
    """SQL (named params) scoring every matching document: (document_id, object_id, score)."""
    return _sql(SCORED, restriction, match, grouped=True)


def matched_object_ids_sql(match: Match, restriction: Restriction | None) -> tuple[str, dict]:
    """SQL (named params) selecting the object ids of every matching document (facets), possibly once per
    matching term: the caller removes duplicates where it needs to (``IN`` does)."""
    return _sql("p.object_id", restriction, match, grouped=False)


def matching_documents_sql(match: Match, restriction: Restriction | None, document_ids: list[int]) -> tuple[str, dict]:
    """SQL (named params) selecting (document_id, object_id) of those of ``document_ids`` that match,
    possibly once per matching term."""
    # Both keys of the posting primary key: one index probe per (term, document).
    sql, params = _sql(
        "p.document_id, p.object_id",
        restriction,
        match,
        grouped=False,
        where="AND p.term = ANY(%(terms)s) AND p.document_id = ANY(%(among)s::bigint[])",
    )
    return sql, {**params, "among": int_array(document_ids)}


def explain_terms(content_type_id: int, terms: list[str], document_ids: list[int]) -> dict[int, dict[str, float]]:
    """Per-term BM25 contributions for the given documents (for ``explain``)."""
    terms = sorted(set(terms))
    if not terms or not document_ids:
        return {}
    sql, params = _sql(
        f"p.document_id, t.term, {_SCORE}",
        None,
        Match(content_type_id, terms),
        grouped=False,
        where="AND p.document_id = ANY(%(ids)s::bigint[])",
    )
    out: dict[int, dict[str, float]] = {}
    with databases.connection().cursor() as cursor:
        cursor.execute(sql, {**params, "ids": int_array(document_ids)})
        for doc_id, term, score in cursor.fetchall():
            out.setdefault(doc_id, {})[term] = float(score)
    return out

"""Typo correction: a query word no indexed text contains -> the nearest catalog word ("snekers" -> sneakers).

Only a word the catalog lacks is corrected (its index term has no document), and only when nothing else
knows it: not a recognised value or synonym, not a color name, not a WordNet word (those are query
expansion's: "pocketbook" is no typo of "notebook"), not a shopping word ("cheap"). Its candidates are the
catalog's spellings (``Spelling``, written by the indexer) that share enough trigrams with it (pg_trgm's
index), of the searched models; the one chosen is the nearest by optimal string alignment distance (an
adjacent transposition counts 1: "bakcpack"), at most 1 for words of 4 to 7 letters and 2 for longer ones
(a little stricter than Elasticsearch's ``fuzziness: AUTO``, which allows 1 from 3 letters: short catalog
words collide), then one with the same first letter (people rarely mistype the first: "cout" is "court"
before "out"), then the one more documents have, then the first alphabetically. Words of 1 to 3 letters
and words with digits are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from rapidfuzz.distance import OSA

from catalog_search import databases

MIN_LENGTH = 4
CANDIDATES = 40  # per word, the most similar by trigrams, before distances are computed
TRIGRAM_THRESHOLD = "0.2"  # below pg_trgm's 0.3: one edit in a 4- or 5-letter word shares few trigrams


def max_distance(word: str) -> int:
    return 0 if len(word) < MIN_LENGTH else 1 if len(word) <= 7 else 2


def correctable(word: str) -> bool:
    return max_distance(word) > 0 and word.isalpha()


def corrections(words: Sequence[str], content_types: Sequence[int]) -> dict[str, str]:
    """word -> its correction for those of ``words`` (folded query words) that have one."""
    wanted = sorted({w for w in words if correctable(w)})
    if not wanted or not content_types:
        return {}
    with transaction.atomic(using=databases.alias()), databases.connection().cursor() as cursor:
        cursor.execute("SET LOCAL pg_trgm.similarity_threshold = " + TRIGRAM_THRESHOLD)
        cursor.execute(
            "SELECT q.w, c.word, c.df FROM unnest(%s::text[]) AS q(w) CROSS JOIN LATERAL ("
            "  SELECT s.word, sum(t.df) AS df FROM catalog_search_spelling s"
            "  JOIN catalog_search_termstat t ON t.content_type_id = s.content_type_id AND t.term = s.term"
            "  WHERE s.content_type_id = ANY(%s) AND s.word %% q.w AND t.df > 0"
            "  AND length(s.word) BETWEEN length(q.w) - 2 AND length(q.w) + 2"
            "  GROUP BY s.word ORDER BY similarity(s.word, q.w) DESC, s.word LIMIT %s"
            ") AS c",
            [wanted, list(content_types), CANDIDATES],
        )
        rows = cursor.fetchall()
    best: dict[str, tuple[int, bool, int, str]] = {}
    for word, candidate, df in rows:
        distance = OSA.distance(word, candidate, score_cutoff=max_distance(word))
        if 0 < distance <= max_distance(word):
            ranked = (distance, candidate[:1] != word[:1], -int(df), candidate)
            if word not in best or ranked < best[word]:
                best[word] = ranked
    return {word: ranked[-1] for word, ranked in best.items()}

"""Relevance evaluation: run judged queries in every mode and score the rankings.

Judgments are JSON lines, one query each::

    {"q": "crimson tote", "filters": {"category": ["bags"]}, "relevant": {"17": 3, "42": 2, "80": 1}}
    {"image": "photos/bag.jpg", "q": "in red", "relevant": {"17": 3}}

``relevant`` maps object ids (or ``app_label.model:id`` to tell models apart) to graded relevance
(> 0; unlisted objects are irrelevant). ``image`` paths are relative to the judgments file. Optional
``tags`` (e.g. ``["paraphrase"]``) group queries: ``report`` gives a table per tag as well as overall.
An optional ``spelled`` gives the query as it should have been typed (``{"q": "red snaekers", "spelled":
"red sneakers", ...}``): it is searched too, with the same relevant ids. Other keys are ignored (the demo's
generator adds the ``target`` a query was written for).

Metrics at cutoff k, averaged over queries (a metric a query has no value for, "-" below, is averaged
over the queries that have one, and shown as "-" when none has):
- ``recall@k``  = |relevant in top k| / |relevant|
- ``ndcg@k``    = DCG@k / ideal DCG@k with gain (2^grade - 1) / log2(rank + 1)
- ``mrr``       = 1 / rank of the first relevant result in the top k (0 if none)
- ``p1@k``      = share of the top k graded >= 1: |top k with grade >= 1| / k (a result list shorter than
  k counts its missing places as misses). "-" for a query that grades nothing >= 1.
- ``p1@k/att``  = the same hits out of what the judgments make attainable: |top k with grade >= 1| /
  min(k, |graded >= 1|). Where fewer than k objects are relevant, ``p1@k`` cannot reach 1 and this can.
- ``p2@k``, ``p2@k/att`` = the same for grade >= 2 ("-" for a query that grades nothing >= 2).
- ``ndcg@k spelled`` = nDCG@k of the query's ``spelled`` text (the same run, the same relevant ids), "-"
  for a query without one: beside ``ndcg@k`` it says what misspelling costs.

For the demo's judgments (docs/relevance.md) grade >= 1 is "of the asked product type" (for price queries
"of the asked type and within the price bound": nothing else is graded) and grade >= 2 "the asked type
and color".

A run with ``understand`` set searches with query understanding on or off (``search(understand=...)``);
``plan(compare_understanding=True)`` adds, before each shown run, the same run with understanding off,
named ``"<run> understand=0"``, so one ``evaluate --compare-understanding`` reports both side by side on
the same database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
RRF_KS = (5, 10, 20, 40, 60, 100)
MODES = ("bm25", "vector", "hybrid-rrf", "hybrid-weighted")
Table = dict[str, dict[str, float]]


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    wanted = {key for key, grade in relevant.items() if grade > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(ranked[:k])) / len(wanted)


def dcg(grades: Iterable[float]) -> float:
    return sum((2**grade - 1) / math.log2(rank + 2) for rank, grade in enumerate(grades))


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    ideal = dcg(sorted((g for g in relevant.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(relevant.get(key, 0) for key in ranked[:k]) / ideal


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    for rank, key in enumerate(ranked[:k], start=1):
        if relevant.get(key, 0) > 0:
            return 1.0 / rank
    return 0.0


def precision_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int, grade: float = 1) -> float | None:
    """Share of the top ``k`` graded ``grade`` or more (missing places count as misses); None when the
    judgment grades nothing that high."""
    if not any(g >= grade for g in relevant.values()):
        return None
    return sum(relevant.get(key, 0) >= grade for key in ranked[:k]) / k


def attainable_precision_at_k(
    ranked: Sequence[str], relevant: Mapping[str, float], k: int, grade: float = 1
) -> float | None:
    """Results graded ``grade`` or more in the top ``k`` / min(k, objects graded that high); None when none is."""
    attainable = min(k, sum(g >= grade for g in relevant.values()))
    if attainable == 0:
        return None
    return sum(relevant.get(key, 0) >= grade for key in ranked[:k]) / attainable


@dataclass
class Judgment:
    q: str | None
    image: Path | None
    filters: dict[str, Any]
    relevant: dict[str, float]
    tags: list[str] = field(default_factory=list)
    line: int = 0  # its line in the judgments file (per-query output), 0 when made in code
    spelled: str | None = None  # the query spelled right, searched as well (``ndcg@k spelled``)


def load_judgments(path: Path) -> list[Judgment]:
    judgments = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            relevant = {str(k): float(v) for k, v in row["relevant"].items()}
        except (ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a judgment ({exc})") from None
        image = (path.parent / row["image"]) if row.get("image") else None
        if not row.get("q") and image is None:
            raise ValueError(f"{path}:{number}: a judgment needs 'q', 'image' or both")
        judgments.append(
            Judgment(
                row.get("q"),
                image,
                row.get("filters") or {},
                relevant,
                row.get("tags") or [],
                number,
                row.get("spelled") or None,
            )
        )
    return judgments


@dataclass(frozen=True)
class Run:
    """One way of searching: a mode, a fusion and its parameter, and query understanding on or off (None:
    as ``CATALOG_SEARCH["QUERY_UNDERSTANDING"]`` says)."""

    name: str
    mode: str
    fusion: str = "rrf"
    alpha: float | None = None
    rrf_k: int | None = None
    understand: bool | None = None
    ranking: float | None = None  # multiplies the business ranking weights (None: as declared)


UNDERSTAND_OFF = " understand=0"  # the name suffix of a run with query understanding off


def understanding_off(run: Run) -> Run:
    """``run`` with query understanding off, named ``"<name> understand=0"``."""
    return replace(run, name=run.name + UNDERSTAND_OFF, understand=False)


def standard_runs(alphas: Sequence[float] = (0.3, 0.5, 0.7)) -> list[Run]:
    runs = [Run("bm25", "bm25"), Run("vector", "vector"), Run("hybrid-rrf", "hybrid")]
    return runs + weighted_sweep(alphas)


def scores(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> dict[str, float | None]:
    """A query's metrics (module docstring) but ``ndcg@k spelled``; None where a query has no value."""
    return {
        f"recall@{k}": recall_at_k(ranked, relevant, k),
        f"ndcg@{k}": ndcg_at_k(ranked, relevant, k),
        "mrr": mrr_at_k(ranked, relevant, k),
        f"p1@{k}": precision_at_k(ranked, relevant, k, 1),
        f"p1@{k}/att": attainable_precision_at_k(ranked, relevant, k, 1),
        f"p2@{k}": precision_at_k(ranked, relevant, k, 2),
        f"p2@{k}/att": attainable_precision_at_k(ranked, relevant, k, 2),
    }


def search_count(judgments: Sequence[Judgment], runs: Sequence[Run], extra: Sequence[Run] = ()) -> int:
    """How many searches ``report`` makes for ``plan``'s runs: a judgment with ``spelled`` searches twice
    in a shown run (``runs``), once in a tuning run (``extra``)."""
    spelled = sum(1 for j in judgments if j.spelled)
    return len(runs) * (len(judgments) + spelled) + len(extra) * len(judgments)


def score_runs(
    judgments: Sequence[Judgment],
    runs: Sequence[Run],
    k: int = 10,
    *,
    searcher: Callable[..., list[str]] | None = None,
    progress: Callable[[int], None] | None = None,
    spelled: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Per-query metrics per run (run name -> one dict per judgment, in order, with the ``ranked`` keys it
    scored): searched once, averaged many ways. With ``spelled``, a judgment that has a ``spelled`` text
    is searched with it too (``ndcg@k spelled``, its keys in ``ranked_spelled``).

    ``progress(n)`` is called after each run with the number of searches it made.
    """
    searcher = searcher or _search_keys
    per_query = {}
    for run in runs:
        rows = []
        for judgment in judgments:
            ranked = searcher(judgment, run, k)
            row: dict[str, Any] = {**scores(ranked, judgment.relevant, k), f"ndcg@{k} spelled": None}
            if spelled and judgment.spelled:
                right = searcher(replace(judgment, q=judgment.spelled, spelled=None), run, k)
                row[f"ndcg@{k} spelled"] = ndcg_at_k(right, judgment.relevant, k)
                row["ranked_spelled"] = right
            rows.append({**row, "ranked": ranked})
        per_query[run.name] = rows
        if progress:
            progress(len(judgments) + (sum(1 for j in judgments if j.spelled) if spelled else 0))
    return per_query


def _is_metric(name: str) -> bool:
    return not name.startswith("ranked")


def mean_table(per_query: Mapping[str, Sequence[Mapping[str, Any]]], rows: Sequence[int] | None = None) -> Table:
    """Average per-query metrics over ``rows`` (default: all queries); 4 decimals, as printed. A metric is
    averaged over the queries that have a value for it (not None), and is None if none has."""
    table: Table = {}
    for name, results in per_query.items():
        chosen = [results[i] for i in rows] if rows is not None else list(results)
        metrics = [m for m in chosen[0] if _is_metric(m)] if chosen else []
        table[name] = {}
        for metric in metrics:
            values = [r[metric] for r in chosen if r.get(metric) is not None]
            table[name][metric] = round(sum(values) / len(values), 4) if values else None
    return table


def evaluate(
    judgments: Sequence[Judgment],
    runs: Sequence[Run],
    k: int = 10,
    *,
    searcher: Callable[..., list[str]] | None = None,
) -> Table:
    """Mean metrics per run. A run that cannot answer a query (a photo query in bm25 mode) scores 0 on it."""
    return mean_table(score_runs(judgments, runs, k, searcher=searcher))


def tag_rows(judgments: Sequence[Judgment]) -> dict[str, list[int]]:
    """Tag -> indexes of the judgments carrying it, in first-seen order (query kinds, for per-kind tables)."""
    found: dict[str, list[int]] = {}
    for i, judgment in enumerate(judgments):
        for tag in judgment.tags:
            found.setdefault(tag, []).append(i)
    return found


def _search_keys(judgment: Judgment, run: Run, k: int) -> list[str]:
    from catalog_search.exceptions import InvalidQuery
    from catalog_search.retrieval.engine import search

    if run.mode == "bm25" and not judgment.q:
        return []
    # bm25 is the keyword signal alone: search() would add the photo's vector signal to a photo + text query.
    image = judgment.image.read_bytes() if judgment.image and run.mode != "bm25" else None
    try:
        results = search(
            q=judgment.q,
            image=image,
            filters=judgment.filters,
            k=k,
            mode=run.mode,
            fusion=run.fusion,
            alpha=run.alpha,
            rrf_k=run.rrf_k,
            understand=run.understand,
            ranking=run.ranking,
        )
    except InvalidQuery:
        return []
    typed = any(":" in key for key in judgment.relevant)
    return [f"{hit.type}:{hit.id}" if typed else str(hit.id) for hit in results]


def weighted_sweep(alphas: Sequence[float] = ALPHAS) -> list[Run]:
    return [Run(f"hybrid-weighted a={a:g}", "hybrid", "weighted", alpha=a) for a in alphas]


RANKING_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0)


def ranking_sweep() -> list[Run]:
    """The served fusion with the business ranking weights scaled (none when no index declares any)."""
    from catalog_search import conf
    from catalog_search.registry import get_indexes

    if not any(index.ranking for index in get_indexes()):
        return []
    fusion = conf.settings().DEFAULT_FUSION
    return [Run(f"hybrid ranking x{s:g}", "hybrid", fusion, ranking=s) for s in RANKING_SCALES]


def best_ranking(table: Mapping[str, Mapping[str, float]], k: int) -> dict[str, Any]:
    """The multiplier of the ranking weights best by nDCG@k (a tie: the smaller), and the RANKING_WEIGHTS
    setting it makes."""
    from catalog_search.registry import get_indexes

    metric = f"ndcg@{k}"
    scale = max(RANKING_SCALES, key=lambda s: (table[f"hybrid ranking x{s:g}"][metric], -s))
    weights = {
        index.label: {signal.name: round(signal.weight * scale, 4) for signal in index.ranking}
        for index in get_indexes()
        if index.ranking
    }
    return {"best_scale": scale, "settings": {"RANKING_WEIGHTS": weights}}


def rrf_sweep(rrf_ks: Sequence[int] = RRF_KS) -> list[Run]:
    return [Run(f"hybrid-rrf k={r}", "hybrid", "rrf", rrf_k=r) for r in rrf_ks]


def best_parameters(table: Mapping[str, Mapping[str, float]], k: int) -> dict[str, Any]:
    """Best alpha and RRF k by nDCG@k in a table holding both sweeps (ties go to the first value), and the
    ``CATALOG_SEARCH`` settings that make the better of the two fusions the default (``settings``; RRF
    on a tie: it needs no calibration)."""
    metric = f"ndcg@{k}"
    alpha = max(ALPHAS, key=lambda a: table[f"hybrid-weighted a={a:g}"][metric])
    rrf_k = max(RRF_KS, key=lambda r: table[f"hybrid-rrf k={r}"][metric])
    weighted_wins = table[f"hybrid-weighted a={alpha:g}"][metric] > table[f"hybrid-rrf k={rrf_k}"][metric]
    settings = (
        {"DEFAULT_FUSION": "weighted", "DEFAULT_ALPHA": alpha}
        if weighted_wins
        else {"DEFAULT_FUSION": "rrf", "RRF_K": rrf_k}
    )
    return {"best_alpha": alpha, "best_rrf_k": rrf_k, "settings": settings}


def tune(judgments: Sequence[Judgment], k: int = 10, searcher: Callable[..., list[str]] | None = None) -> dict:
    """Best alpha (weighted fusion) and best RRF k by nDCG@k."""
    weighted, rrf = weighted_sweep(), rrf_sweep()
    table = evaluate(judgments, [*weighted, *rrf], k, searcher=searcher)
    return {
        **best_parameters(table, k),
        "alpha_sweep": {r.name: table[r.name] for r in weighted},
        "rrf_k_sweep": {r.name: table[r.name] for r in rrf},
    }


def plan(
    modes: Sequence[str] | None = None, tune: bool = False, compare_understanding: bool = False
) -> tuple[list[Run], list[Run]]:
    """The runs ``report`` shows for ``modes`` (default all), and the extra runs ``tune`` needs. With
    ``compare_understanding``, each shown run is preceded by the same run with query understanding off
    (``understanding_off``); the tuning runs search as the settings say."""
    modes = list(modes or MODES)
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"Unknown modes {sorted(unknown)}; modes are {', '.join(MODES)}.")
    shown = [
        r for r in standard_runs(ALPHAS) if r.name in modes or (r.fusion == "weighted" and "hybrid-weighted" in modes)
    ]
    names = {r.name for r in shown}
    extra = [r for r in (*weighted_sweep(), *rrf_sweep(), *ranking_sweep()) if r.name not in names] if tune else []
    if compare_understanding:
        shown = [variant for run in shown for variant in (understanding_off(run), run)]
    return shown, extra


def report(
    judgments: Sequence[Judgment],
    k: int = 10,
    *,
    modes: Sequence[str] | None = None,
    tune: bool = False,
    searcher: Callable[..., list[str]] | None = None,
    progress: Callable[[int], None] | None = None,
    per_query: bool = False,
    compare_understanding: bool = False,
) -> dict[str, Any]:
    """Everything ``evaluate`` prints: the table overall and per tag, and with ``tune`` the best parameters;
    with ``per_query``, also each query's metrics and ranking per mode (``query_rows``).

    ``modes`` picks among bm25, vector, hybrid-rrf and hybrid-weighted (the alpha sweep). Each distinct
    run searches every query once (a query with a ``spelled`` text twice in a shown run); the per-tag
    tables and the tuning reuse those rankings. ``compare_understanding``: see ``plan``.
    """
    runs, extra = plan(modes, tune, compare_understanding)
    scored = score_runs(judgments, runs, k, searcher=searcher, progress=progress)
    scored.update(score_runs(judgments, extra, k, searcher=searcher, progress=progress, spelled=False))
    shown = {r.name: scored[r.name] for r in runs}
    result: dict[str, Any] = {"k": k, "queries": len(judgments), "modes": mean_table(shown), "by_tag": {}}
    if per_query:
        result["per_query"] = query_rows(judgments, shown)
    for tag, rows in tag_rows(judgments).items():
        result["by_tag"][tag] = {"queries": len(rows), "modes": mean_table(shown, rows)}
    if tune:
        sweeps = {r.name: scored[r.name] for r in (*weighted_sweep(), *rrf_sweep())}
        overall = mean_table(sweeps)
        result["tune"] = {
            **best_parameters(overall, k),
            "by_tag": {tag: best_parameters(mean_table(sweeps, rows), k) for tag, rows in tag_rows(judgments).items()},
            "alpha_sweep": {r.name: overall[r.name] for r in weighted_sweep()},
            "rrf_k_sweep": {r.name: overall[r.name] for r in rrf_sweep()},
        }
        ranking = ranking_sweep()
        if ranking:
            table = mean_table({r.name: scored[r.name] for r in ranking})
            result["tune"]["ranking"] = {**best_ranking(table, k), "sweep": table}
    return result


def query_rows(judgments: Sequence[Judgment], shown: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per judgment (trec_eval's ``-q``): where it is, what it asked, and per mode its metrics, the
    keys it returned and their grades (0 for a key the judgment does not grade), to find the queries that
    fail and see what came instead."""
    rows = []
    for i, judgment in enumerate(judgments):
        modes = {}
        for name, results in shown.items():
            ranked = results[i]["ranked"]
            metrics = {m: None if v is None else round(v, 4) for m, v in results[i].items() if _is_metric(m)}
            modes[name] = {**metrics, "ranked": ranked, "grades": [judgment.relevant.get(key, 0) for key in ranked]}
            if "ranked_spelled" in results[i]:
                modes[name]["ranked_spelled"] = results[i]["ranked_spelled"]
        rows.append(
            {
                "line": judgment.line,
                "q": judgment.q,
                "spelled": judgment.spelled,
                "image": str(judgment.image) if judgment.image else None,
                "filters": judgment.filters,
                "tags": judgment.tags,
                "modes": modes,
            }
        )
    return rows


def format_table(table: Mapping[str, Mapping[str, float | None]]) -> str:
    """A fixed-width text table: one row per run, one column per metric that some run has a value for
    ("-" where a run has none)."""
    columns = list(next(iter(table.values())).keys()) if table else []
    columns = [c for c in columns if any(row.get(c) is not None for row in table.values())]
    widths = {c: max(9, len(c)) for c in columns}
    width = max([len(name) for name in table] + [8])
    lines = [f"{'mode':<{width}}  " + "  ".join(f"{c:>{widths[c]}}" for c in columns)]
    for name, row in table.items():
        cells = [f"{'-':>{widths[c]}}" if row.get(c) is None else f"{row[c]:>{widths[c]}.4f}" for c in columns]
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)

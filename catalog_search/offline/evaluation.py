"""Relevance evaluation: run judged queries in every mode and score the rankings.

Judgments are JSON lines, one query each::

    {"q": "crimson tote", "filters": {"category": ["bags"]}, "relevant": {"17": 3, "42": 2, "80": 1}}
    {"image": "photos/bag.jpg", "q": "in red", "relevant": {"17": 3}}

``relevant`` maps object ids (or ``app_label.model:id`` to tell models apart) to graded relevance
(> 0; unlisted objects are irrelevant). ``image`` paths are relative to the judgments file. Optional
``tags`` (e.g. ``["paraphrase"]``) group queries: ``report`` gives a table per tag as well as overall.
Other keys are ignored (the demo's generator adds the ``target`` a query was written for).

Metrics at cutoff k, averaged over queries:
- Recall@k = |relevant in top k| / |relevant|
- nDCG@k   = DCG@k / ideal DCG@k with gain (2^grade - 1) / log2(rank + 1)
- MRR      = 1 / rank of the first relevant result in the top k (0 if none)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass
class Judgment:
    q: str | None
    image: Path | None
    filters: dict[str, Any]
    relevant: dict[str, float]
    tags: list[str] = field(default_factory=list)
    line: int = 0  # its line in the judgments file (per-query output), 0 when made in code


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
            Judgment(row.get("q"), image, row.get("filters") or {}, relevant, row.get("tags") or [], number)
        )
    return judgments


@dataclass(frozen=True)
class Run:
    """One way of searching: a mode, a fusion and its parameter."""

    name: str
    mode: str
    fusion: str = "rrf"
    alpha: float | None = None
    rrf_k: int | None = None


def standard_runs(alphas: Sequence[float] = (0.3, 0.5, 0.7)) -> list[Run]:
    runs = [Run("bm25", "bm25"), Run("vector", "vector"), Run("hybrid-rrf", "hybrid")]
    return runs + weighted_sweep(alphas)


def scores(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> dict[str, float]:
    return {
        f"recall@{k}": recall_at_k(ranked, relevant, k),
        f"ndcg@{k}": ndcg_at_k(ranked, relevant, k),
        "mrr": mrr_at_k(ranked, relevant, k),
    }


def score_runs(
    judgments: Sequence[Judgment],
    runs: Sequence[Run],
    k: int = 10,
    *,
    searcher: Callable[..., list[str]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per-query metrics per run (run name -> one dict per judgment, in order, with the ``ranked`` keys it
    scored): searched once, averaged many ways.

    ``progress(n)`` is called after each run with the number of searches it made.
    """
    searcher = searcher or _search_keys
    per_query = {}
    for run in runs:
        ranked = [searcher(j, run, k) for j in judgments]
        per_query[run.name] = [
            {**scores(r, j.relevant, k), "ranked": r} for r, j in zip(ranked, judgments, strict=True)
        ]
        if progress:
            progress(len(judgments))
    return per_query


def mean_table(per_query: Mapping[str, Sequence[Mapping[str, Any]]], rows: Sequence[int] | None = None) -> Table:
    """Average per-query metrics over ``rows`` (default: all queries); 4 decimals, as printed."""
    table: Table = {}
    for name, results in per_query.items():
        chosen = [results[i] for i in rows] if rows is not None else list(results)
        metrics = [m for m in chosen[0] if m != "ranked"] if chosen else []
        table[name] = {m: round(sum(r[m] for r in chosen) / max(1, len(chosen)), 4) for m in metrics}
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
        )
    except InvalidQuery:
        return []
    typed = any(":" in key for key in judgment.relevant)
    return [f"{hit.type}:{hit.id}" if typed else str(hit.id) for hit in results]


def weighted_sweep(alphas: Sequence[float] = ALPHAS) -> list[Run]:
    return [Run(f"hybrid-weighted a={a:g}", "hybrid", "weighted", alpha=a) for a in alphas]


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


def plan(modes: Sequence[str] | None = None, tune: bool = False) -> tuple[list[Run], list[Run]]:
    """The runs ``report`` shows for ``modes`` (default all), and the extra runs ``tune`` needs."""
    modes = list(modes or MODES)
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"Unknown modes {sorted(unknown)}; modes are {', '.join(MODES)}.")
    shown = [
        r for r in standard_runs(ALPHAS) if r.name in modes or (r.fusion == "weighted" and "hybrid-weighted" in modes)
    ]
    names = {r.name for r in shown}
    extra = [r for r in (*weighted_sweep(), *rrf_sweep()) if r.name not in names] if tune else []
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
) -> dict[str, Any]:
    """Everything ``evaluate`` prints: the table overall and per tag, and with ``tune`` the best parameters;
    with ``per_query``, also each query's metrics and ranking per mode (``query_rows``).

    ``modes`` picks among bm25, vector, hybrid-rrf and hybrid-weighted (the alpha sweep). Each distinct
    run searches every query once; the per-tag tables and the tuning reuse those rankings.
    """
    runs, extra = plan(modes, tune)
    scored = score_runs(judgments, [*runs, *extra], k, searcher=searcher, progress=progress)
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
            metrics = {m: round(v, 4) for m, v in results[i].items() if m != "ranked"}
            modes[name] = {**metrics, "ranked": ranked, "grades": [judgment.relevant.get(key, 0) for key in ranked]}
        rows.append(
            {
                "line": judgment.line,
                "q": judgment.q,
                "image": str(judgment.image) if judgment.image else None,
                "filters": judgment.filters,
                "tags": judgment.tags,
                "modes": modes,
            }
        )
    return rows


def format_table(table: Mapping[str, Mapping[str, float]]) -> str:
    """A fixed-width text table: one row per run, one column per metric."""
    columns = list(next(iter(table.values())).keys()) if table else []
    width = max([len(name) for name in table] + [8])
    lines = [f"{'mode':<{width}}  " + "  ".join(f"{c:>9}" for c in columns)]
    for name, row in table.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{row[c]:>9.4f}" for c in columns))
    return "\n".join(lines)

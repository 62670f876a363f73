"""Relevance evaluation: run judged queries in every mode and score the rankings.

Judgments are JSON lines, one query each::

    {"q": "crimson tote", "filters": {"category": ["bags"]}, "relevant": {"17": 3, "42": 2, "80": 1}}
    {"image": "photos/bag.jpg", "q": "in red", "relevant": {"17": 3}}

``relevant`` maps object ids (or ``app_label.model:id`` to tell models apart) to graded relevance
(> 0; unlisted objects are irrelevant). ``image`` paths are relative to the judgments file.

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
RRF_KS = (10, 20, 40, 60, 100)


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
        judgments.append(Judgment(row.get("q"), image, row.get("filters") or {}, relevant, row.get("tags") or []))
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
    runs += [Run(f"hybrid-weighted a={a:g}", "hybrid", "weighted", alpha=a) for a in alphas]
    return runs


def scores(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> dict[str, float]:
    return {
        f"recall@{k}": recall_at_k(ranked, relevant, k),
        f"ndcg@{k}": ndcg_at_k(ranked, relevant, k),
        "mrr": mrr_at_k(ranked, relevant, k),
    }


def evaluate(
    judgments: Sequence[Judgment],
    runs: Sequence[Run],
    k: int = 10,
    searcher: Callable[..., list[str]] | None = None,
) -> dict[str, dict[str, float]]:
    """Mean metrics per run. A run that cannot answer a query (a photo query in bm25 mode) scores 0 on it."""
    searcher = searcher or _search_keys
    table: dict[str, dict[str, float]] = {}
    for run in runs:
        totals: dict[str, float] = {}
        for judgment in judgments:
            ranked = searcher(judgment, run, k)
            for name, value in scores(ranked, judgment.relevant, k).items():
                totals[name] = totals.get(name, 0.0) + value
        table[run.name] = {name: round(total / max(1, len(judgments)), 4) for name, total in totals.items()}
    return table


def _search_keys(judgment: Judgment, run: Run, k: int) -> list[str]:
    from catalog_search.exceptions import InvalidQuery
    from catalog_search.retrieval.engine import search

    if run.mode == "bm25" and not judgment.q:
        return []
    image = judgment.image.read_bytes() if judgment.image else None
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


def tune(judgments: Sequence[Judgment], k: int = 10, searcher: Callable[..., list[str]] | None = None) -> dict:
    """Best alpha (weighted fusion) and best RRF k by nDCG@k."""
    weighted = evaluate(judgments, [Run(f"a={a:g}", "hybrid", "weighted", alpha=a) for a in ALPHAS], k, searcher)
    rrf = evaluate(judgments, [Run(f"k={r}", "hybrid", "rrf", rrf_k=r) for r in RRF_KS], k, searcher)
    best_alpha = max(ALPHAS, key=lambda a: weighted[f"a={a:g}"][f"ndcg@{k}"])
    best_k = max(RRF_KS, key=lambda r: rrf[f"k={r}"][f"ndcg@{k}"])
    return {"best_alpha": best_alpha, "best_rrf_k": best_k, "alpha_sweep": weighted, "rrf_k_sweep": rrf}


def format_table(table: Mapping[str, Mapping[str, float]]) -> str:
    columns = list(next(iter(table.values())).keys()) if table else []
    width = max([len(name) for name in table] + [8])
    lines = [f"{'mode':<{width}}  " + "  ".join(f"{c:>9}" for c in columns)]
    for name, row in table.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{row[c]:>9.4f}" for c in columns))
    return "\n".join(lines)

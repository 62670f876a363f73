"""Relevance metrics against hand-computed values, and the evaluate command end to end."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from catalog_search.indexing import sync
from catalog_search.offline.evaluation import (
    Judgment,
    Run,
    attainable_precision_at_k,
    evaluate,
    format_table,
    load_judgments,
    mean_table,
    mrr_at_k,
    ndcg_at_k,
    plan,
    precision_at_k,
    recall_at_k,
    report,
    search_count,
    tune,
)


def test_metrics_match_hand_computed_values():
    ranked = ["a", "b", "c", "d"]
    relevant = {"b": 3, "d": 1, "e": 2}
    assert recall_at_k(ranked, relevant, 3) == pytest.approx(1 / 3)
    # DCG@3 = (2^3-1)/log2(3) = 4.416508; ideal = 7/log2(2) + 3/log2(3) + 1/log2(4) = 9.392789
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx(4.416508 / 9.392789, abs=1e-6)
    assert mrr_at_k(ranked, relevant, 3) == 0.5
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    # k=4 adds d (grade 1) at rank 4: + 1/log2(5) = 0.430677
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx((4.416508 + 0.430677) / 9.392789, abs=1e-6)


def test_metrics_edge_cases():
    assert ndcg_at_k(["b", "e", "d"], {"b": 3, "d": 1, "e": 2}, 3) == pytest.approx(1.0)
    assert (recall_at_k(["x"], {"b": 1}, 10), ndcg_at_k(["x"], {"b": 1}, 10), mrr_at_k(["x"], {"b": 1}, 10)) == (
        0.0,
        0.0,
        0.0,
    )
    assert ndcg_at_k(["a"], {}, 10) == 0.0 and recall_at_k(["a"], {}, 10) == 0.0
    assert mrr_at_k(["x", "y", "b"], {"b": 1}, 2) == 0.0  # beyond the cutoff


def test_precision_by_grade_raw_and_of_the_attainable():
    ranked = ["a", "b", "c", "x"]
    relevant = {"a": 1, "b": 3, "c": 2, "d": 1, "e": 2}
    # grade >= 1: a, b, c of the top 10 -> 3/10; of min(10, 5 relevant) -> 3/5
    assert precision_at_k(ranked, relevant, 10) == pytest.approx(0.3)
    assert attainable_precision_at_k(ranked, relevant, 10) == pytest.approx(0.6)
    # grade >= 2: b, c -> 2/10; three are graded >= 2 (b, c, e) -> 2/3
    assert precision_at_k(ranked, relevant, 10, 2) == pytest.approx(0.2)
    assert attainable_precision_at_k(ranked, relevant, 10, 2) == pytest.approx(2 / 3)
    # k=2: a, b; both >= 1 (2/2, and 2/min(2, 5)); only b >= 2
    assert (precision_at_k(ranked, relevant, 2), attainable_precision_at_k(ranked, relevant, 2)) == (1.0, 1.0)
    assert (precision_at_k(ranked, relevant, 2, 2), attainable_precision_at_k(ranked, relevant, 2, 2)) == (0.5, 0.5)
    # grade >= 3 at k=10: b of one -> 1/10 raw, 1/1 of the attainable
    assert (precision_at_k(ranked, relevant, 10, 3), attainable_precision_at_k(ranked, relevant, 10, 3)) == (0.1, 1.0)
    # nothing graded that high: no value (not 0)
    assert (
        precision_at_k(ranked, {"a": 1}, 10, 2) is None and attainable_precision_at_k(ranked, {"a": 1}, 10, 2) is None
    )
    assert precision_at_k([], {"a": 1}, 10) == 0.0 and attainable_precision_at_k([], {"a": 1}, 10) == 0.0


def test_report_precision_columns_and_queries_without_a_value():
    rankings = {"plain": ["a", "b", "x"], "price": ["p", "q", "y", "z"]}

    def searcher(judgment, run, k):
        return rankings[judgment.q]

    judgments = [
        Judgment("plain", None, {}, {"a": 3, "b": 1, "c": 2}, ["plain"]),
        Judgment("price", None, {}, {"p": 1, "q": 1, "r": 1}, ["price"]),  # graded 1 only
    ]
    result = report(judgments, k=4, modes=["bm25"], searcher=searcher)
    plain, price = (result["by_tag"][t]["modes"]["bm25"] for t in ("plain", "price"))
    # plain: a, b of 4 places, of min(4, 3 graded >= 1); a of 4 places, of min(4, 2 graded >= 2 (a, c))
    assert (plain["p1@4"], plain["p1@4/att"], plain["p2@4"], plain["p2@4/att"]) == (0.5, 0.6667, 0.25, 0.5)
    assert (price["p1@4"], price["p1@4/att"], price["p2@4"], price["p2@4/att"]) == (0.5, 0.6667, None, None)
    overall = result["modes"]["bm25"]
    assert overall["p1@4"] == 0.5 and overall["p2@4"] == 0.25, "p2 averaged over the query that has one"
    assert overall["ndcg@4 spelled"] is None
    printed = format_table(result["by_tag"]["price"]["modes"])
    assert "p1@4/att" in printed and "p2@4" not in printed and "spelled" not in printed
    assert "     -" in format_table({"x": {"m": 1.0, "n": None}, "y": {"m": 0.5, "n": 0.25}})
    assert mean_table({"r": [{"m": None, "ranked": []}, {"m": None, "ranked": []}]}) == {"r": {"m": None}}


def test_typo_queries_are_searched_as_spelled_too(tmp_path):
    calls = []

    def searcher(judgment, run, k):
        calls.append((judgment.q, run.name))
        return ["a", "b"] if judgment.q == "red sneakers" else ["x", "b"]

    judgments = [
        Judgment("red snaekers", None, {}, {"a": 3, "b": 1}, ["typo"], spelled="red sneakers"),
        Judgment("blue tote", None, {}, {"b": 3}, ["plain"]),
    ]
    result = report(judgments, k=10, modes=["bm25", "vector"], tune=True, searcher=searcher, per_query=True)
    typo = result["by_tag"]["typo"]["modes"]["bm25"]
    # typed: only b (grade 1) at rank 2 -> (1/log2(3)) / (7 + 1/log2(3)); spelled: a, b in order -> 1
    assert typo["ndcg@10"] == pytest.approx(0.63093 / 7.63093, abs=1e-4) and typo["ndcg@10 spelled"] == 1.0
    assert result["by_tag"]["plain"]["modes"]["bm25"]["ndcg@10 spelled"] is None
    assert result["modes"]["bm25"]["ndcg@10 spelled"] == 1.0  # over the one query that has a spelling
    shown, extra = plan(["bm25", "vector"], tune=True)
    # the spelled text is searched in each shown run, not in the tuning sweep's other runs
    assert sum(q == "red sneakers" for q, _ in calls) == len(shown)
    assert len(calls) == search_count(judgments, shown, extra) == len(shown) * 3 + len(extra) * 2
    row = result["per_query"][0]
    assert row["spelled"] == "red sneakers" and row["modes"]["bm25"]["ranked_spelled"] == ["a", "b"]
    assert result["per_query"][1]["spelled"] is None and "ranked_spelled" not in result["per_query"][1]["modes"]["bm25"]
    path = tmp_path / "j.jsonl"
    path.write_text(
        json.dumps({"q": "red snaekers", "spelled": "red sneakers", "relevant": {"a": 3}}) + "\n"
        + json.dumps({"q": "blue tote", "relevant": {"b": 3}}) + "\n"
    )  # fmt: skip
    assert [j.spelled for j in load_judgments(path)] == ["red sneakers", None]


def test_compare_understanding_runs_each_shown_mode_off_and_on():
    seen = []

    def searcher(judgment, run, k):
        seen.append((run.name, run.understand))
        return ["a"] if run.understand is not False else ["x"]

    shown, extra = plan(["bm25", "hybrid-rrf"], tune=True, compare_understanding=True)
    assert [(r.name, r.understand) for r in shown] == [
        ("bm25 understand=0", False),
        ("bm25", None),
        ("hybrid-rrf understand=0", False),
        ("hybrid-rrf", None),
    ]
    assert all(r.understand is None for r in extra)  # the tuning sweep searches as the settings say
    assert plan(["bm25"])[0] == [Run("bm25", "bm25")]
    result = report([Judgment("q", None, {}, {"a": 1})], modes=["bm25", "hybrid-rrf"], searcher=searcher,
                    compare_understanding=True)  # fmt: skip
    assert list(result["modes"]) == [r.name for r in shown]
    assert result["modes"]["bm25 understand=0"]["ndcg@10"] == 0.0 and result["modes"]["bm25"]["ndcg@10"] == 1.0
    assert sorted(set(seen)) == sorted((r.name, r.understand) for r in shown)


def test_evaluate_and_tune_average_over_queries():
    results = {("q1", "bm25"): ["a", "b"], ("q2", "bm25"): ["c"], ("q1", "vector"): ["b"], ("q2", "vector"): ["x"]}

    def searcher(judgment, run, k):
        return results.get((judgment.q, run.mode), ["b", "a"])

    judgments = [Judgment("q1", None, {}, {"b": 1}), Judgment("q2", None, {}, {"c": 2})]
    table = evaluate(judgments, [Run("bm25", "bm25"), Run("vector", "vector")], k=10, searcher=searcher)
    assert table["bm25"]["recall@10"] == 1.0 and table["bm25"]["mrr"] == 0.75
    assert table["bm25"]["ndcg@10"] == pytest.approx((1 / 1.584963 + 1) / 2, abs=1e-4)
    assert (table["vector"]["recall@10"], table["vector"]["ndcg@10"], table["vector"]["mrr"]) == (0.5, 0.5, 0.5)
    tuned = tune(judgments, 10, searcher)
    assert tuned["best_alpha"] == 0.1 and tuned["best_rrf_k"] == 5  # all ties: the first value wins


def test_report_per_tag_and_tuning_search_each_run_once():
    calls = []

    def searcher(judgment, run, k):
        calls.append((judgment.q, run.name))
        if run.mode == "bm25":
            return ["a"]  # right for q1 only
        if run.fusion == "weighted":
            return ["b"] if run.alpha >= 0.7 else ["a"]  # high alpha is right for q2 only
        return ["b"] if (run.rrf_k or 60) <= 20 else ["x"]

    judgments = [
        Judgment("q1", None, {}, {"a": 3}, ["plain"]),
        Judgment("q2", None, {}, {"b": 3}, ["paraphrase"]),
        Judgment("q3", None, {}, {"b": 1}, ["paraphrase"]),
    ]
    result = report(judgments, k=10, tune=True, searcher=searcher)
    shown, extra = plan(tune=True)
    assert len(calls) == len(set(calls)) == 3 * (len(shown) + len(extra))  # the sweeps reuse the shown runs
    assert result["modes"]["bm25"]["ndcg@10"] == pytest.approx(1 / 3, abs=1e-4)
    assert (result["by_tag"]["plain"]["queries"], result["by_tag"]["paraphrase"]["queries"]) == (1, 2)
    assert result["by_tag"]["plain"]["modes"]["bm25"]["mrr"] == 1.0
    assert result["by_tag"]["paraphrase"]["modes"]["bm25"]["mrr"] == 0.0
    assert result["by_tag"]["paraphrase"]["modes"]["hybrid-weighted a=0.7"]["mrr"] == 1.0
    tuned = result["tune"]
    # overall: alpha >= 0.7 answers two queries of three; RRF k <= 20 likewise
    assert (tuned["best_alpha"], tuned["best_rrf_k"]) == (0.7, 5)
    assert tuned["settings"] == {"DEFAULT_FUSION": "rrf", "RRF_K": 5}  # a tie with weighted 0.7: RRF
    assert tuned["by_tag"]["plain"]["best_alpha"] == 0.1
    with pytest.raises(ValueError, match="Unknown modes"):
        report(judgments, modes=["bm42"], searcher=searcher)


def test_tuning_suggests_the_better_fusion_as_settings():
    def searcher(judgment, run, k):
        if run.fusion == "weighted" and run.alpha == 0.9:
            return ["a", "b"]  # the only run with both, best first
        return ["b", "a"] if run.mode == "hybrid" else ["x"]

    judgments = [Judgment("q1", None, {}, {"a": 3, "b": 1})]
    tuned = report(judgments, k=10, tune=True, searcher=searcher)["tune"]
    assert tuned["settings"] == {"DEFAULT_FUSION": "weighted", "DEFAULT_ALPHA": 0.9}


def test_report_per_query_rows():
    def searcher(judgment, run, k):
        return ["a", "x", "b"] if run.mode == "bm25" else ["b"]

    judgments = [
        Judgment("q1", None, {"category": ["bags"]}, {"a": 3, "b": 1}, ["plain"], line=1),
        Judgment("q2", None, {}, {"c": 2}, [], line=3),
    ]
    result = report(judgments, k=2, modes=["bm25", "vector"], searcher=searcher, per_query=True)
    first, second = result["per_query"]
    assert (first["line"], first["q"], first["filters"], first["tags"]) == (1, "q1", {"category": ["bags"]}, ["plain"])
    assert set(first["modes"]) == {"bm25", "vector"}
    bm25 = first["modes"]["bm25"]
    assert (bm25["ranked"], bm25["grades"]) == (["a", "x", "b"], [3, 0, 1])
    # at k=2 only "a" counts: DCG = 7; ideal = 7 + 1/log2(3)
    assert bm25["ndcg@2"] == pytest.approx(7 / (7 + 1 / 1.584963), abs=1e-4) and bm25["recall@2"] == 0.5
    assert first["modes"]["vector"] == {
        "recall@2": 0.5,
        "ndcg@2": pytest.approx(1 / 7.63093, abs=1e-4),
        "mrr": 1.0,
        "p1@2": 0.5,  # b of two places
        "p1@2/att": 0.5,  # b of min(2, 2 relevant)
        "p2@2": 0.0,  # a (grade 3) is not there
        "p2@2/att": 0.0,  # nor of min(2, 1 graded >= 2)
        "ndcg@2 spelled": None,
        "ranked": ["b"],
        "grades": [1],
    }
    assert second["line"] == 3 and second["modes"]["vector"]["grades"] == [0] and second["modes"]["vector"]["mrr"] == 0
    # the averages are unchanged by the rows
    assert result["modes"]["bm25"]["mrr"] == 0.5 and "ranked" not in result["modes"]["bm25"]
    assert "per_query" not in report(judgments, k=2, modes=["bm25"], searcher=searcher)


@pytest.mark.django_db
def test_evaluate_command(tmp_path, make_product, product_index, encoder, capsys):
    tote = make_product("Red leather tote", color="red")
    boots = make_product("Black leather boots", color="black", category="shoes")
    make_product("Green wool scarf", color="green", category="accessories")
    sync.reindex(product_index, encoder)
    with tote.image.open("rb") as fh:
        (tmp_path / "tote.png").write_bytes(fh.read())
    lines = [
        {"q": "leather tote", "relevant": {str(tote.pk): 3, str(boots.pk): 1}},
        {"q": "boots", "filters": {"category": ["shoes"]}, "relevant": {str(boots.pk): 3}},
        {"image": "tote.png", "relevant": {str(tote.pk): 3}, "tags": ["photo"]},
    ]
    judgments = tmp_path / "judgments.jsonl"
    judgments.write_text("\n".join(json.dumps(line) for line in lines))
    call_command(
        "catalog_search",
        "evaluate",
        "--judgments",
        str(judgments),
        "--k",
        "5",
        "--tune",
        "--json",
        str(tmp_path / "out.json"),
        "--per-query",
        str(tmp_path / "queries.jsonl"),
    )
    out = capsys.readouterr().out
    assert "3 queries, k=5" in out and "hybrid-rrf" in out and "best alpha" in out and "[photo] 1 queries" in out
    data = json.loads((tmp_path / "out.json").read_text())
    bm25 = data["modes"]["bm25"]
    # bm25: query 1 ranks the tote first and the boots second (perfect), query 2 perfect, the photo query 0.
    assert bm25["ndcg@5"] == pytest.approx(2 / 3, abs=1e-4) and bm25["recall@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert data["modes"]["vector"]["mrr"] > 0  # the photo query finds its own picture first
    assert "hybrid-weighted a=0.5" in data["modes"]
    assert data["by_tag"]["photo"]["modes"]["bm25"]["ndcg@5"] == 0.0  # bm25 cannot answer a photo
    assert set(data["tune"]) >= {"best_alpha", "best_rrf_k", "settings", "by_tag", "alpha_sweep", "rrf_k_sweep"}
    assert "suggested: CATALOG_SEARCH {'DEFAULT_FUSION': " in out
    assert "per_query" not in data
    rows = [json.loads(line) for line in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 3] and rows[2]["image"].endswith("tote.png")
    assert rows[0]["modes"]["bm25"]["ranked"] == [str(tote.pk), str(boots.pk)]
    assert rows[0]["modes"]["bm25"]["grades"] == [3, 1] and rows[0]["modes"]["bm25"]["ndcg@5"] == 1.0
    assert rows[2]["modes"]["bm25"] == {
        "recall@5": 0.0,
        "ndcg@5": 0.0,
        "mrr": 0.0,
        "p1@5": 0.0,
        "p1@5/att": 0.0,
        "p2@5": 0.0,
        "p2@5/att": 0.0,
        "ndcg@5 spelled": None,
        "ranked": [],
        "grades": [],
    }
    assert rows[2]["modes"]["vector"]["ranked"][0] == str(tote.pk)  # its own picture first
    assert set(rows[1]["modes"]) == set(data["modes"])  # the shown modes, not the tuning sweeps
    capsys.readouterr()
    call_command("catalog_search", "evaluate", "--judgments", str(judgments), "--mode", "bm25", "--per-query", "-")
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [json.loads(line)["modes"]["bm25"]["ranked"] for line in printed] == [
        row["modes"]["bm25"]["ranked"] for row in rows
    ]
    with pytest.raises(CommandError, match="cannot write"):
        call_command(
            "catalog_search", "evaluate", "--judgments", str(judgments), "--per-query", str(tmp_path / "no" / "q.jsonl")
        )
    with pytest.raises(CommandError, match="not a judgment"):
        (tmp_path / "bad.jsonl").write_text('{"q": "x"}\n')
        call_command("catalog_search", "evaluate", "--judgments", str(tmp_path / "bad.jsonl"))


@pytest.mark.django_db
def test_evaluate_command_compares_understanding(tmp_path, make_product, product_index, encoder, capsys):
    tote = make_product("Red leather tote", color="red", price="10.00", product_type="handbag")
    boots = make_product("Black leather boots", color="black", category="shoes", price="30.00", product_type="boots")
    sync.reindex(product_index, encoder)
    lines = [
        # "under 20" is a price bound when understood, two more words to match when not
        {"q": "leather under 20", "relevant": {str(tote.pk): 1}, "tags": ["price"]},
        {"q": "leathr boots", "spelled": "leather boots", "relevant": {str(boots.pk): 3}, "tags": ["typo"]},
    ]
    judgments = tmp_path / "judgments.jsonl"
    judgments.write_text("\n".join(json.dumps(line) for line in lines))
    call_command(
        "catalog_search", "evaluate", "--judgments", str(judgments), "--mode", "bm25", "--compare-understanding",
        "--json", str(tmp_path / "out.json"), "--per-query", str(tmp_path / "queries.jsonl"),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "bm25 understand=0" in out and "ndcg@10 spelled" in out
    data = json.loads((tmp_path / "out.json").read_text())
    assert list(data["modes"]) == ["bm25 understand=0", "bm25"]
    price, typo = (json.loads(line) for line in (tmp_path / "queries.jsonl").read_text().splitlines())
    assert price["modes"]["bm25"]["ranked"] == [str(tote.pk)]  # the bound filters the boots out
    assert price["modes"]["bm25 understand=0"]["ranked"] != [str(tote.pk)]
    assert price["modes"]["bm25"]["p1@10/att"] == 1.0 and price["modes"]["bm25"]["p1@10"] == 0.1
    assert typo["modes"]["bm25"]["ranked_spelled"][0] == str(boots.pk)
    assert typo["modes"]["bm25"]["ndcg@10 spelled"] == 1.0

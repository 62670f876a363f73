"""Business ranking against the real embedded PostgreSQL: declared numeric, boolean and date fields move
products within their relevance, never past the understood values' tiers; RANKING_WEIGHTS and the
``ranking`` parameter change or turn it off; system checks; ``evaluate --tune`` sweeps the weights."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import checks
from django.test import Client, override_settings
from django.utils import timezone

from catalog_search import RankingSignal
from catalog_search.checks import check_indexes
from catalog_search.indexing import sync
from catalog_search.offline import evaluation
from catalog_search.retrieval.engine import search
from demo_project.shop.models import Product


@pytest.fixture
def shop(make_product, product_index, encoder):
    made = {
        "cheap": make_product("Canvas tote", price="10.00", color="red"),
        "mid": make_product("Cotton tote", price="50.00", color="red", in_stock=False),
        "dear": make_product("Leather tote", price="200.00", color="blue"),
    }
    Product.objects.filter(pk=made["cheap"].pk).update(added_at=timezone.now() - timedelta(days=30))
    assert not sync.reindex(product_index, encoder).failed
    return {name: str(p.pk) for name, p in made.items()}


@pytest.fixture
def signals(product_index, monkeypatch):
    def declare(*declared):
        monkeypatch.setattr(type(product_index), "ranking_signals", list(declared))

    return declare


def ids(results) -> list[str]:
    return [str(hit.id) for hit in results]


def _settings(**overrides):
    from django.conf import settings

    return override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, **overrides})


def test_a_numeric_signal_orders_equally_relevant_products(shop, signals):
    plain = search("tote", mode="bm25", understand=False)
    assert len({round(hit.scores["bm25"], 6) for hit in plain}) == 1  # three equally relevant totes (by rank)
    signals(RankingSignal("price", weight=10.0))  # ten times the spread of their fused scores: price decides
    ranked = search("tote", mode="bm25", understand=False, explain=True)
    assert ids(ranked) == [shop["dear"], shop["mid"], shop["cheap"]]
    assert ranked.results[0].explain["contributions"]["ranking"] > ranked.results[1].explain["contributions"]["ranking"]
    assert ids(search("tote", mode="bm25", understand=False, ranking=0)) == ids(plain)  # relevance alone


def test_booleans_and_dates_rank_too(shop, signals):
    signals(RankingSignal("in_stock", weight=2.0))
    assert ids(search("tote", mode="bm25", understand=False))[-1] == shop["mid"]  # the one out of stock last
    signals(RankingSignal("added_at", weight=2.0))
    assert ids(search("tote", mode="bm25", understand=False))[-1] == shop["cheap"]  # the oldest last


def test_the_understood_values_still_come_first(shop, signals):
    signals(RankingSignal("price", weight=5.0))
    results = ids(search("red tote", mode="bm25"))
    assert results[:2] == [shop["mid"], shop["cheap"]]  # red first (its tier), then by price among them
    assert results[2] == shop["dear"]


def test_ranking_weights_setting_overrides_the_declaration(shop, signals, product_index):
    signals(RankingSignal("price", weight=0.5))
    with _settings(RANKING_WEIGHTS={product_index.label: {"price": -0.5}}):
        assert ids(search("tote", mode="bm25", understand=False))[0] == shop["cheap"]  # a negative weight: cheap first
    with _settings(RANKING_WEIGHTS={product_index.label: {"price": 0}}):
        assert product_index.ranking == []


def test_the_ranking_parameter_is_validated(shop, client: Client):
    for bad in ["-1", "11", "abc", "nan", "inf"]:
        response = client.get("/api/search/", {"q": "tote", "ranking": bad})
        assert response.status_code == 400 and "'ranking'" in response.json()["error"]["message"], bad
    assert client.get("/api/search/", {"q": "tote", "ranking": "0"}).status_code == 200


def test_bad_ranking_signals_are_system_check_errors(signals, product_index):
    signals("title", "nope", RankingSignal("price", weight="heavy"))
    errors = [e.msg for e in check_indexes([product_index]) if isinstance(e, checks.Error)]
    joined = "\n".join(errors)
    assert "ranking signal 'title' must be a numeric, boolean or date field" in joined
    assert "'nope'" in joined
    assert "weight that is not a number" in joined


def test_evaluate_tune_sweeps_the_ranking_weights(shop, signals, tmp_path, product_index):
    signals(RankingSignal("price", weight=0.5))
    judgments = tmp_path / "j.jsonl"
    judgments.write_text(json.dumps({"q": "tote", "relevant": {shop["cheap"]: 3, shop["mid"]: 1}}) + "\n")
    result = evaluation.report(evaluation.load_judgments(judgments), k=3, tune=True)
    ranking = result["tune"]["ranking"]
    assert set(ranking["sweep"]) == {f"hybrid ranking x{s:g}" for s in evaluation.RANKING_SCALES}
    # The judgments want the cheap tote first: a positive price weight only hurts, so no ranking wins.
    assert ranking["best_scale"] == 0.0
    assert ranking["settings"] == {"RANKING_WEIGHTS": {product_index.label: {"price": 0.0}}}
    assert ranking["sweep"]["hybrid ranking x4"]["ndcg@3"] < ranking["sweep"]["hybrid ranking x0"]["ndcg@3"]

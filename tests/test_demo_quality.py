"""The shipped demo encoder on held-out data (another catalog seed, and the held-out OpenMoji art style).

The targets are the demo issue's; the numbers are also in docs/relevance.md. This uses the real trained
weights in demo_project/encoder, so a retrained checkpoint that misses a target fails here.
"""

from __future__ import annotations

import pytest

from catalog_search.encoding.encoders import Encoder
from demo_project.settings import DEMO_ENCODER
from demo_project.shop.quality import TARGETS, evaluate, missing_targets


@pytest.fixture(scope="module")
def metrics() -> dict[str, float]:
    assert (DEMO_ENCODER / "config.json").exists(), f"the demo encoder is missing from {DEMO_ENCODER}"
    return evaluate(Encoder(str(DEMO_ENCODER)), count=1000, seed=2)


def test_held_out_quality_meets_every_target(metrics):
    assert missing_targets(metrics) == [], metrics


def test_the_evaluation_is_not_trivial(metrics):
    # Enough queries and pictures that a lucky few cannot carry the averages.
    assert metrics["queries"] >= 500 and metrics["customer_photos"] >= 240 and metrics["perturbed_photos"] == 300
    assert set(TARGETS) <= set(metrics)

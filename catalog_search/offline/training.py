"""Contrastive image-text training on the catalog's own (photo, text) pairs.

LiT-style: the text tower is locked, so captions are embedded once up front and only the image tower
learns to map photos next to the texts describing them. This makes training cheap enough for CPUs and
keeps the text side's understanding of synonyms and paraphrases intact.

- From scratch: the project's CatalogDualEncoder (modeling.py): frozen MiniLM text tower, small CNN.
- From a checkpoint (``init``): any supported dual encoder; its vision parameters are fine-tuned and its
  text side stays frozen (a CLIP fine-tune on the shop's vocabulary).

Objects that share the ``group_by`` field values (e.g. type and color) count as positives of each other
(multi-positive InfoNCE), so two red sneakers are not pushed apart.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from catalog_search.encoding.images import open_image
from catalog_search.registry import SearchIndex

logger = logging.getLogger(__name__)

VISION_PREFIXES = ("image_model", "vision_model", "visual_projection")


@dataclass
class TrainConfig:
    steps: int = 900
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 50
    image_size: int = 48
    channels: tuple[int, ...] = (32, 64, 128, 256)
    group_by: tuple[str, ...] = ()
    seed: int = 0
    time_budget: float | None = None  # seconds; training stops early when spent
    val_fraction: float = 0.1
    init: str | None = None


@dataclass
class TrainReport:
    steps: int = 0
    seconds: float = 0.0
    pairs: int = 0
    captions: int = 0
    loss: float = float("nan")
    losses: list[float] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)


@dataclass
class Pairs:
    images: torch.Tensor  # uint8, N x 3 x S x S
    captions: list[list[int]]  # per object: indexes into the caption table
    groups: list[str]
    object_ids: list[str]


def _group_key(instance: Any, paths: Sequence[str]) -> str:
    values = []
    for path in paths:
        value: Any = instance
        for part in path.replace(".", "__").split("__"):
            value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        values.append(str(value))
    return "|".join(values)


def load_pairs(index: SearchIndex, image_size: int, group_by: Sequence[str]) -> tuple[Pairs, list[str]]:
    """Every object with a readable image: its pixels, its caption texts and its group key."""
    if not index.image_field:
        raise ValueError(f"{index.label} has no image_field: there is nothing to train an image tower on")
    caption_ids: dict[str, int] = {}
    images, captions, groups, ids = [], [], [], []
    for instance in index.with_related(index.get_queryset()).order_by("pk").iterator(chunk_size=500):
        file = getattr(instance, index.image_field)
        if not file:
            continue
        try:
            with file.open("rb") as fh:
                image = open_image(fh)
        except Exception as exc:  # a broken photo is skipped, as indexing does
            logger.warning("training: skipping %s %s: %s", index.label, instance.pk, exc)
            continue
        finally:
            file.close()
        texts = [t for t in [*index.field_texts(instance), index.get_text(instance)] if t]
        captions.append([caption_ids.setdefault(t, len(caption_ids)) for t in dict.fromkeys(texts)])
        images.append(_square(image, image_size))
        groups.append(_group_key(instance, group_by) if group_by else str(instance.pk))
        ids.append(str(instance.pk))
    if len(images) < 8:
        raise ValueError(f"{index.label} has {len(images)} objects with readable images; training needs more")
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Pairs(pixels, captions, groups, ids), list(caption_ids)


def _square(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and center-crop, as the CLIP-style image processor does."""
    width, height = image.size
    scale = size / min(width, height)
    image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _outline(images: torch.Tensor) -> torch.Tensor:
    """Darken strong edges, as drawings with ink outlines have: one way product pictures of the same
    kind differ between artists and photographers. Makes the tower lean on shape, not on rendering style."""
    gray = images.mean(dim=1, keepdim=True)
    kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    edges = F.conv2d(gray, kernel, padding=1).abs() + F.conv2d(gray, kernel.transpose(2, 3), padding=1).abs()
    return images * (1 - (edges > 0.35).float() * 0.85)


def _augment(batch: torch.Tensor, generator: torch.Generator, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Random shifted crops (reflect padding), horizontal flips, brightness/contrast jitter, and on some
    images a blur or ink outlines (robustness to how the product was drawn or photographed)."""
    n, _, size, _ = batch.shape
    pad = max(2, size // 12)
    padded = F.pad(batch.float() / 255.0, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    crops = torch.stack([padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(offsets.tolist())])
    flip = torch.rand(n, generator=generator) < 0.5
    crops[flip] = crops[flip].flip(-1)
    brightness = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4
    means = crops.mean(dim=(1, 2, 3), keepdim=True)
    crops = ((crops - means) * contrast + means) * brightness
    style = torch.rand(n, generator=generator)
    outlined, blurred = style < 0.2, (style >= 0.2) & (style < 0.35)
    if outlined.any():
        crops[outlined] = _outline(crops[outlined])
    if blurred.any():
        crops[blurred] = F.avg_pool2d(crops[blurred], 3, stride=1, padding=1, count_include_pad=False)
    return (crops.clamp(0, 1) - mean) / std


def _pixels(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (batch.float() / 255.0 - mean) / std


def _load_model(config: TrainConfig):
    from catalog_search.encoding.modeling import CatalogDualEncoderConfig, CatalogDualEncoderModel

    if config.init:
        from transformers import AutoModel

        from catalog_search.encoding.sources import model_path

        return AutoModel.from_pretrained(model_path(config.init))
    return CatalogDualEncoderModel(
        CatalogDualEncoderConfig(image_size=config.image_size, channels=tuple(config.channels))
    )


def _image_stats(output_or_init: str | None) -> tuple[int | None, list[float], list[float]]:
    if not output_or_init:
        return None, [0.5] * 3, [0.5] * 3
    from transformers import AutoImageProcessor

    from catalog_search.encoding.sources import model_path

    processor = AutoImageProcessor.from_pretrained(model_path(output_or_init))
    crop = getattr(processor, "crop_size", None) or processor.size
    size = crop.get("height") or crop.get("shortest_edge")
    return int(size), list(processor.image_mean), list(processor.image_std)


def embed_captions(model, tokenizer, captions: list[str], batch_size: int = 256) -> torch.Tensor:
    """Unit-length embeddings of every caption with the (frozen) text tower."""
    from catalog_search.encoding.runtimes import features as _features

    chunks = []
    with torch.inference_mode():
        for start in range(0, len(captions), batch_size):
            tokens = tokenizer(
                captions[start : start + batch_size], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            inputs = {k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            if "token_type_ids" in inputs and "token_type_ids" not in model.get_text_features.__code__.co_varnames:
                inputs.pop("token_type_ids")
            chunks.append(_features(model.get_text_features(**inputs)))
    return F.normalize(torch.cat(chunks).float(), dim=-1)


def _multi_positive_loss(image: torch.Tensor, text: torch.Tensor, groups: list[str], scale: torch.Tensor):
    logits = scale.exp().clamp(max=100) * image @ text.T
    keys = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    ids = torch.tensor([keys[g] for g in groups])
    targets = (ids[:, None] == ids[None, :]).float()
    targets = targets / targets.sum(1, keepdim=True)
    loss_i = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(targets * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def train(
    index: SearchIndex,
    output: Path,
    config: TrainConfig,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainReport:
    """Train, save a transformers checkpoint to ``output`` and return what happened."""
    from transformers import AutoTokenizer

    from catalog_search.encoding.modeling import save_processors, text_tower_path

    started = time.monotonic()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = _load_model(config)
    init_size, mean_list, std_list = _image_stats(config.init)
    size = init_size or config.image_size
    mean = torch.tensor(mean_list).view(1, 3, 1, 1)
    std = torch.tensor(std_list).view(1, 3, 1, 1)
    tokenizer = AutoTokenizer.from_pretrained(config.init or text_tower_path())

    pairs, captions = load_pairs(index, size, config.group_by)
    text_table = embed_captions(model, tokenizer, captions)
    order = list(range(len(pairs.groups)))
    rng.shuffle(order)
    n_val = int(len(order) * config.val_fraction) if len(order) >= 50 else 0
    val, train_ids = order[:n_val], order[n_val:]

    trainable = [p for name, p in model.named_parameters() if name.startswith(VISION_PREFIXES)]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(VISION_PREFIXES))
    scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    optimizer = torch.optim.AdamW(
        [{"params": trainable, "weight_decay": config.weight_decay}, {"params": [scale], "weight_decay": 0.0}],
        lr=config.lr,
    )

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        progress_ = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    report = TrainReport(pairs=len(pairs.groups), captions=len(captions))
    model.train()
    batch_size = min(config.batch_size, len(train_ids))
    for step in range(config.steps):
        if config.time_budget and time.monotonic() - started > config.time_budget:
            logger.info("training: time budget spent after %d steps", step)
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        chosen = rng.sample(train_ids, batch_size)
        pixels = _augment(pairs.images[chosen], generator, mean, std)
        text = text_table[[rng.choice(pairs.captions[i]) for i in chosen]]
        image = F.normalize(_vision(model, pixels), dim=-1)
        loss = _multi_positive_loss(image, text, [pairs.groups[i] for i in chosen], scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        report.steps = step + 1
        report.losses.append(round(value, 4))
        if progress:
            progress(step + 1, config.steps, value)
    model.eval()
    report.loss = float(np.mean(report.losses[-20:])) if report.losses else float("nan")
    if val:
        report.validation = validate(model, pairs, text_table, val, mean=mean, std=std)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    if config.init:
        AutoTokenizer.from_pretrained(config.init).save_pretrained(output)
        from transformers import AutoImageProcessor

        AutoImageProcessor.from_pretrained(config.init).save_pretrained(output)
    else:
        save_processors(output, size)
    report.seconds = round(time.monotonic() - started, 1)
    summary = {
        "config": {**asdict(config), "channels": list(config.channels)},
        **{k: v for k, v in asdict(report).items() if k != "losses"},
    }
    (output / "training.json").write_text(json.dumps(summary, indent=2))
    return report


def _vision(model, pixels: torch.Tensor) -> torch.Tensor:
    from catalog_search.encoding.runtimes import features as _features

    return _features(model.get_image_features(pixel_values=pixels))


@torch.inference_mode()
def validate(model, pairs: Pairs, text_table: torch.Tensor, val: list[int], *, mean, std) -> dict[str, float]:
    """On held-out objects: text -> image Recall@10 of the object itself (its first caption as query) and
    Precision@10 of its group (same type and color, when grouped)."""
    images = torch.cat(
        [_vision(model, _pixels(pairs.images[val[i : i + 256]], mean, std)) for i in range(0, len(val), 256)]
    )
    images = F.normalize(images.float(), dim=-1)
    queries = text_table[[pairs.captions[i][0] for i in val]]
    top = (queries @ images.T).topk(min(10, len(val)), dim=1).indices
    recall = np.mean([j in row for j, row in enumerate(top.tolist())])
    groups = [pairs.groups[i] for i in val]
    precision = np.mean([np.mean([groups[k] == groups[j] for k in row]) for j, row in enumerate(top.tolist())])
    return {
        "object_recall_at_10": round(float(recall), 4),
        "group_precision_at_10": round(float(precision), 4),
        "objects": len(val),
    }

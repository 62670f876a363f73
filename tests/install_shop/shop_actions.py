"""What the test does inside the shop, one action per run: ``python shop_actions.py ACTION`` prints JSON."""

import io
import json
import os
import random
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopproj.settings")
django.setup()

from catalog.models import Brand, Item, Tag  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.db import transaction  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import catalog_search  # noqa: E402

COLORS = [(220, 30, 30), (30, 60, 220), (30, 160, 60), (240, 210, 30)]
PHOTOGRAPHED = 12


def photo(i: int) -> bytes:
    image = Image.new("RGB", (64, 64), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8 + i % 5, 8, 56, 56 - i % 7), fill=COLORS[i % len(COLORS)])
    draw.ellipse((20, 20, 30 + i % 20, 40), fill=(20, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def create() -> dict:
    """201 items (one transaction, as an import would), photos on 12, two brands, three tags."""
    rng = random.Random(7)
    with transaction.atomic():
        brands = [Brand.objects.create(name="Acme"), Brand.objects.create(name="Globex")]
        tags = [Tag.objects.create(name=n) for n in ("waterproof", "organic", "handmade")]
        for i in range(201):
            item = Item(
                title=f"{rng.choice(['Canvas', 'Leather', 'Linen'])} {rng.choice(['bag', 'jacket', 'scarf'])} {i}",
                description="A plain description that names no brand.",
                brand=brands[i % 2],
                price=10 + i,
                available=i % 3 != 0,
            )
            if i < PHOTOGRAPHED:
                item.photo.save(f"item{i}.png", ContentFile(photo(i)), save=False)
            item.save()
            item.tags.set([tags[i % 3]])
    return {"items": Item.objects.count()}


def search(q: str = "", mode: str = "bm25", filters: str = "{}", photo_of: str = "") -> dict:
    image = photo(int(photo_of)) if photo_of else None
    results = catalog_search.search(q=q or None, image=image, mode=mode, filters=json.loads(filters), k=100)
    return {
        "titles": [r.object.title for r in results],
        "brands": sorted({r.object.brand.name for r in results}),
        "photographed": sum(bool(r.object.photo) for r in results),
        "facets": {name: {v["value"]: v["count"] for v in values} for name, values in results.facets.items()},
        "understood": results.query.get("understood"),
        "prices": sorted(float(r.object.price) for r in results),
    }


def count(word: str, filters: str = "{}") -> dict:
    """The ORM's answer: items whose title has ``word`` and that pass ``filters``."""
    return {"count": Item.objects.filter(title__icontains=word, **json.loads(filters)).distinct().count()}


def rename_brand(old: str, new: str) -> dict:
    brand = Brand.objects.get(name=old)  # as the admin does: a save, whose hook enqueues the dependents
    brand.name = new
    brand.save()
    return {"items": brand.items.count()}


def admin_status_page() -> dict:
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_superuser("staff", "staff@example.com", "pw")
    client = Client()
    client.force_login(user)
    response = client.get("/admin/catalog_search/indexstatus/")
    return {"status": response.status_code, "rebuild": b"Rebuild all" in response.content}


def where() -> dict:
    return {"catalog_search": catalog_search.__file__}


if __name__ == "__main__":
    action, *args = sys.argv[1:]
    print(json.dumps(globals()[action](*args)))

"""``manage.py seed_demo_catalog``: fill the demo shop with a deterministic catalog and its product photos."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from catalog_search import synonyms
from catalog_search.models import QueryRule
from demo_project.shop.artwork import CATALOG_SETS, HELD_OUT_SET, ArtworkUnavailable, check_art_sets
from demo_project.shop.catalog import ProductSpec, generate, photo_jpeg
from demo_project.shop.models import Product

DEMO_SYNONYMS = """\
# Slang and shorthand the product titles never use
kicks, sneakers
footy => football
lappy => laptop
"""
# Searches for gifts ("gift for a child") show toys first.
DEMO_RULE = {
    "name": "Gifts: toys first",
    "match": "contains",
    "query": "gift",
    "boost_filter": "category=toys",
    "boost_factor": 3.0,
}


class Command(BaseCommand):
    help = (
        "Create the demo catalog: products with titles, descriptions and generated photos. "
        "The same --count and --seed always give the same products and byte-identical images."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=2000, help="number of products (default 2000)")
        parser.add_argument("--seed", type=int, default=1, help="catalog seed (default 1)")
        parser.add_argument("--batch-size", type=int, default=250, help="rows per INSERT (default 250)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--if-empty", action="store_true", help="do nothing if the shop already has products")
        mode.add_argument("--replace", action="store_true", help="delete every existing product and its image first")

    def handle(self, *args: Any, **options: Any) -> None:
        count, seed, batch_size = options["count"], options["seed"], options["batch_size"]
        if count < 0 or batch_size < 1:
            raise CommandError("--count must be >= 0 and --batch-size >= 1.")
        self._synonyms()
        existing = Product.objects.count()
        if options["if_empty"] and existing:
            self.stdout.write(f"The shop already has {existing:,} products; nothing to do (--if-empty).")
            return
        try:
            check_art_sets(CATALOG_SETS)  # fail before writing anything, with the install command
        except ArtworkUnavailable as exc:
            raise CommandError(str(exc)) from exc

        started = time.monotonic()
        specs = generate(count, seed)
        # One transaction: an interrupted run leaves the shop as it was (bar orphaned image files),
        # so --if-empty never mistakes half a catalog for a finished one.
        with transaction.atomic():
            removed = self._delete_all() if options["replace"] else 0
            progress = tqdm(
                total=count,
                desc="Seeding demo catalog",
                unit="product",
                file=sys.stderr,
                disable=options["verbosity"] == 0,
            )
            with progress:
                for start in range(0, count, batch_size):
                    batch = specs[start : start + batch_size]
                    Product.objects.bulk_create([self._product(spec) for spec in batch])
                    progress.update(len(batch))
        self._summary(specs, seed, removed, existing if not options["replace"] else 0, time.monotonic() - started)

    def _synonyms(self) -> None:
        """The demo's staff synonyms and query rule (editable in the admin), added once."""
        done = synonyms.import_lines(DEMO_SYNONYMS)
        if done.created:
            self.stdout.write(f"Added {len(done.created)} demo synonyms (admin: Catalog search > Synonyms).")
        _, created = QueryRule.objects.get_or_create(name=DEMO_RULE["name"], defaults=DEMO_RULE)
        if created:
            self.stdout.write(f"Added the demo query rule {DEMO_RULE['name']!r} (admin: Catalog search > Query rules).")

    def _delete_all(self) -> int:
        """Delete all products and their image files; returns how many products were deleted."""
        storage = Product._meta.get_field("image").storage
        for name in Product.objects.exclude(image="").values_list("image", flat=True):
            storage.delete(name)
        removed, _ = Product.objects.all().delete()
        return removed

    @staticmethod
    def _product(spec: ProductSpec) -> Product:
        product = Product(**spec.model_fields())
        product.image.save(spec.image_name, ContentFile(photo_jpeg(spec)), save=False)
        return product

    def _summary(self, specs: list[ProductSpec], seed: int, removed: int, kept: int, seconds: float) -> None:
        patterns = Counter(spec.pattern for spec in specs)
        patterned = ", ".join(f"{patterns[p]} {p}" for p in ("striped", "dotted", "checked"))
        lines = [
            f"Seeded {len(specs):,} products with seed {seed} in {seconds:.1f} s"
            + (f" (replaced {removed:,})" if removed else "")
            + (f" (added to {kept:,} existing)" if kept else "")
            + ".",
            f"  {len({s.slug for s in specs})} product types in {len({s.category for s in specs})} categories, "
            f"{len({s.color for s in specs})} colors, {patterned}; {sum(s.in_stock for s in specs):,} in stock.",
            f"  Photos from the {' and '.join(CATALOG_SETS)} art sets; {HELD_OUT_SET} is held out for customer photos.",
            "  Index them with: python manage.py catalog_search reindex --pending (or let a Celery worker do it).",
        ]
        self.stdout.write(self.style.SUCCESS(lines[0]))
        self.stdout.write("\n".join(lines[1:]))

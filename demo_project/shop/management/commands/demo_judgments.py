"""``manage.py demo_judgments``: judged queries for ``catalog_search evaluate`` from the demo catalog."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo_project.shop.judgments import DEFAULT_COUNTS, KINDS, generate_judgments


class Command(BaseCommand):
    help = (
        "Write graded judgments (plain, synonym, paraphrase, photo, photo+text, typo and price queries) "
        "generated from the demo products' type, color, pattern and price, plus the customer photos they use. "
        "See docs/relevance.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            default="var/judgments.jsonl",
            metavar="FILE.jsonl",
            help="where to write (photos go to FILE-photos/ beside it; default var/judgments.jsonl)",
        )
        parser.add_argument("--seed", type=int, default=1, help="which queries and photos (default 1)")
        for kind in KINDS:
            parser.add_argument(
                f"--{kind.replace('+', '-')}",
                type=int,
                default=DEFAULT_COUNTS[kind],
                dest=kind,
                metavar="N",
                help=f"number of {kind} queries (default {DEFAULT_COUNTS[kind]})",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        output = Path(options["output"])
        if output.suffix != ".jsonl":
            raise CommandError("--output must name a .jsonl file")
        counts = {kind: options[kind] for kind in KINDS}
        if min(counts.values()) < 0:
            raise CommandError("query counts must be >= 0")
        try:
            path = generate_judgments(output.parent, options["seed"], counts, name=output.stem)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        import json

        kinds = Counter(json.loads(line)["tags"][0] for line in path.read_text().splitlines())
        summary = ", ".join(f"{kinds[k]} {k}" for k in KINDS)
        self.stdout.write(self.style.SUCCESS(f"Wrote {sum(kinds.values())} judged queries to {path} ({summary})."))
        self.stdout.write(f"Evaluate: python manage.py catalog_search evaluate --judgments {path} --tune")

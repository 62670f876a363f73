"""Which encoder search uses: the active one, whose vectors the index holds."""

from __future__ import annotations

from catalog_search import databases
from catalog_search.encoding.encoders import Encoder, get_encoder
from catalog_search.exceptions import EncoderUnavailable
from catalog_search.models import Encoder as EncoderRow


def active_encoder() -> tuple[EncoderRow, Encoder]:
    """The encoder whose vectors search uses, loaded; EncoderUnavailable if none or it cannot load."""
    row = databases.using(EncoderRow.objects).filter(state=EncoderRow.State.ACTIVE).first()
    if row is None:
        raise EncoderUnavailable("No embeddings have been indexed yet; run a reindex first.")
    encoder = get_encoder(row.name)
    if encoder.identity != row.identity:
        raise EncoderUnavailable(
            f"The model at {row.name!r} changed since the index was built ({row.identity} -> "
            f"{encoder.identity}); reindex to use it."
        )
    return row, encoder

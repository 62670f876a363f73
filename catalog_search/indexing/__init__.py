"""The write side: save -> outbox -> task -> encode -> store.

triggers.py writes the outbox row in the save's own transaction; signals.py and enqueue.py hand the ids to
a Celery task once it commits; outbox.py is what the task runs (claim, build, encode, write); documents.py
and vectors.py are what it writes; switch.py moves the index to a new model; vocabulary.py embeds the
catalog's words for query expansion; sync.py indexes in the calling process (``reindex --sync``).
"""

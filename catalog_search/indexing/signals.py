"""Hooks: after a registered object is saved or deleted, enqueue its indexing once the transaction
commits. The outbox row itself is written by the database trigger (triggers.py); this only makes it
fast. A change to a row that indexed texts read through a relation (a brand, a tag, a through row) has
its dependents put in the outbox by a trigger too; here, after the commit, those rows are enqueued.
After ``migrate``, the triggers are (re)installed for every registered model."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import DatabaseError, transaction
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save

from catalog_search.indexing import outbox
from catalog_search.indexing.enqueue import enqueue_on_commit, send_later
from catalog_search.registry import SearchIndex, get_index, get_indexes

logger = logging.getLogger(__name__)


def _changed(sender: type, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    index = get_index(sender)
    if index is not None:
        enqueue_on_commit(index.label, instance.pk)
    _related_changed(sender)


def _m2m_changed(sender: type, action: str = "", **kwargs: Any) -> None:
    if action.startswith("post_"):
        _related_changed(sender)


def _related_changed(sender: type) -> None:
    for index in _dependent_indexes(sender):
        transaction.on_commit(lambda index=index: _enqueue_outbox(index))


def _dependent_indexes(sender: type) -> list[SearchIndex]:
    found = []
    for index in get_indexes():
        try:
            if any(dep.model is sender._meta.concrete_model for dep in index.dependencies()):
                found.append(index)
        except FieldDoesNotExist:
            continue  # a wrong declaration: the system check reports it
    return found


def _enqueue_outbox(index: SearchIndex) -> None:
    """Enqueue the outbox rows no task was sent for (the trigger wrote them); marked first, so the next
    change does not send them again, and if the send fails the sweep sends them once they are old."""
    try:
        ids = outbox.unqueued_ids(index)
        if ids:
            outbox.mark_enqueued(index, ids)
            send_later(index.label, ids)
    except DatabaseError as exc:  # never fail the save that committed; the sweep enqueues them later
        logger.warning("catalog_search: could not enqueue the dependents of a change: %s", exc)


def _migrated(sender: Any, using: str = "default", **kwargs: Any) -> None:
    if sender.name != "catalog_search":
        return
    from catalog_search.indexing.triggers import install_triggers

    install_triggers()


def connect() -> None:
    post_save.connect(_changed, dispatch_uid="catalog_search_post_save")
    post_delete.connect(_changed, dispatch_uid="catalog_search_post_delete")
    m2m_changed.connect(_m2m_changed, dispatch_uid="catalog_search_m2m_changed")
    post_migrate.connect(_migrated, dispatch_uid="catalog_search_post_migrate")

"""Hooks: after a registered object is saved or deleted, enqueue its indexing once the transaction
commits. The outbox row itself is written by the database trigger (triggers.py); this only makes it
fast. After ``migrate``, the triggers are (re)installed for every registered model."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_migrate, post_save

from catalog_search.indexing.enqueue import enqueue_on_commit
from catalog_search.registry import get_index


def _changed(sender: type, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    index = get_index(sender)
    if index is not None and not raw:
        enqueue_on_commit(index.label, instance.pk)


def _migrated(sender: Any, using: str = "default", **kwargs: Any) -> None:
    if sender.name != "catalog_search":
        return
    from catalog_search.indexing.triggers import install_triggers

    install_triggers()


def connect() -> None:
    post_save.connect(_changed, dispatch_uid="catalog_search_post_save")
    post_delete.connect(_changed, dispatch_uid="catalog_search_post_delete")
    post_migrate.connect(_migrated, dispatch_uid="catalog_search_post_migrate")

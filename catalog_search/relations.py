"""Declared text paths through relations: what ``SearchField("brand__name")`` reads, and which models
it depends on.

One parser decides for the system check, the indexer and the reindex-on-change hooks, so they cannot
disagree: every part but the last is a relation (ForeignKey, OneToOne, many-to-many, or their reverse
sides); the last is a field, a relation (read as ``str()`` of the related objects), a property or a
method (called without arguments). Many values (a many-to-many, a reverse ForeignKey) are joined with
``SEPARATOR`` in primary-key order, so the text, and the hash that decides re-encoding, are stable.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import connection, models

SEPARATOR = ", "


@dataclass(frozen=True)
class Hop:
    """One step of a path: from ``source`` through the relation named ``accessor`` to ``target``."""

    source: type[models.Model]
    accessor: str  # the instance attribute (a related object or a related manager)
    query_name: str  # the ORM lookup name ("tags", "reviews" or "review")
    target: type[models.Model]
    relation: Any  # the model field, or the ForeignObjectRel of a reverse relation


@dataclass(frozen=True)
class TextPath:
    """A parsed ``SearchField`` name."""

    path: str
    hops: tuple[Hop, ...]
    attribute: str | None  # the last part; None when the path ends at a relation (str() of its objects)
    call: bool = False  # the last part is a method

    @property
    def prefetch(self) -> str | None:
        """The ``prefetch_related`` lookup that loads the path's related objects in one query per hop."""
        return "__".join(h.accessor for h in self.hops) or None

    def read(self, instance: models.Model) -> str:
        """The text at the path for ``instance`` ("" when a relation is empty)."""
        objects: list[Any] = [instance]
        for hop in self.hops:
            objects = [related for obj in objects for related in _related(obj, hop.accessor)]
        values: list[Any] = objects if self.attribute is None else []
        for obj in objects if self.attribute is not None else ():
            values.extend(_related(obj, self.attribute, call=self.call))
        texts = (str(v).strip() for v in values if v is not None)
        return SEPARATOR.join(t for t in texts if t)


def _related(obj: Any, name: str, *, call: bool = False) -> list[Any]:
    try:
        value = getattr(obj, name)
    except ObjectDoesNotExist:  # an empty reverse one-to-one
        return []
    if call:
        value = value()
    if isinstance(value, models.Manager):
        queryset = value.all()  # the prefetched objects when prefetch_related loaded them
        items = list(queryset)
        return items if queryset.ordered else sorted(items, key=lambda o: o.pk)
    return [] if value is None else [value]


def parse_relation_path(model: type[models.Model], path: str) -> tuple[Hop, ...]:
    """Parse a path of relations only ("brand", "brand__country"), as ``depends_on`` names them."""
    parsed = _parse(model, path)
    if parsed.attribute is not None:
        raise FieldDoesNotExist(f"{path!r} does not end at a relation of {model._meta.label}")
    return parsed.hops


def parse_text_path(model: type[models.Model], path: str) -> TextPath:
    """Parse ``path`` on ``model``; raise FieldDoesNotExist saying which part is wrong and why."""
    return _parse(model, path)


@functools.lru_cache(maxsize=512)
def _parse(model: type[models.Model], path: str) -> TextPath:
    parts = path.split("__")
    hops: list[Hop] = []
    current = model
    for part in parts[:-1]:
        hop = _hop(current, part)
        if hop is None:
            raise FieldDoesNotExist(f"{part!r} is not a relation of {current._meta.label}{_within(path)}")
        hops.append(hop)
        current = hop.target
    last = parts[-1]
    hop = _hop(current, last)
    if hop is not None:  # a relation at the end: str() of the related objects
        return TextPath(path, (*hops, hop), None)
    try:
        field = current._meta.get_field(last)
    except FieldDoesNotExist:
        field = None
    if field is not None:
        return TextPath(path, tuple(hops), field.attname)
    attribute = getattr(current, last, None)
    if isinstance(attribute, property | functools.cached_property):
        return TextPath(path, tuple(hops), last)
    if isinstance(attribute, types.FunctionType):
        return TextPath(path, tuple(hops), last, call=True)
    raise FieldDoesNotExist(
        f"{last!r} is not a field, relation, property or method of {current._meta.label}{_within(path)}"
    )


def _within(path: str) -> str:
    return f" (in {path!r})" if "__" in path else ""


def _hop(model: type[models.Model], name: str) -> Hop | None:
    for field in model._meta.get_fields():
        if not field.is_relation or field.related_model is None:
            continue
        reverse = isinstance(field, models.ForeignObjectRel)
        accessor = field.get_accessor_name() if reverse else field.name
        query_name = field.name
        if name in (accessor, query_name) and accessor:
            return Hop(model, accessor, query_name, field.related_model, field)
    return None


# Dependencies: which tables' changes change the text of indexed objects --------------------------


@dataclass(frozen=True)
class Dependency:
    """Rows of ``model``'s table whose change changes the text of the indexed objects
    ``indexed.filter(<lookup>__in=[row.<key_column>])`` (before and after the change)."""

    model: type[models.Model]  # may be the auto-created through model of a many-to-many
    key_column: str
    key_type: str  # the SQL type the key values are cast to
    lookup: str
    columns: tuple[str, ...] | None  # the columns whose update matters; None: any column
    on_insert: bool  # a new row can already be linked (a through row, a reverse ForeignKey's row)


@functools.lru_cache(maxsize=128)
def dependencies(model: type[models.Model], paths: tuple[str, ...]) -> tuple[Dependency, ...]:
    """The dependencies of text paths (and ``depends_on`` relation paths) declared on ``model``."""
    found: dict[tuple, Dependency] = {}
    for path in paths:
        parsed = _parse(model, path)
        for k in range(len(parsed.hops)):
            for dep in _hop_dependencies(parsed, k):
                key = (dep.model, dep.key_column, dep.lookup)
                old = found.get(key)
                if old is not None:  # two paths through one table: the columns of both matter
                    both = None if None in (old.columns, dep.columns) else {*old.columns, *dep.columns}
                    dep = dataclasses.replace(dep, columns=None if both is None else tuple(sorted(both)))
                found[key] = dep
    return tuple(found.values())


def _hop_dependencies(parsed: TextPath, k: int) -> list[Dependency]:
    hop = parsed.hops[k]
    before = "__".join(h.query_name for h in parsed.hops[:k])
    upto = "__".join(h.query_name for h in parsed.hops[: k + 1])
    columns = _columns_read(parsed, k)
    rel = hop.relation
    target_pk = hop.target._meta.pk
    by_target = Dependency(
        hop.target, target_pk.column, target_pk.cast_db_type(connection), f"{upto}__pk", columns, False
    )
    if rel.many_to_many:
        field = rel if not isinstance(rel, models.ForeignObjectRel) else rel.field
        through = field.remote_field.through
        source_column = field.m2m_column_name() if rel is field else field.m2m_reverse_name()
        source_pk = hop.source._meta.pk
        by_link = Dependency(
            through, source_column, source_pk.cast_db_type(connection), _prefixed(before, "pk"), None, True
        )
        return [by_link, by_target]
    if isinstance(rel, models.ForeignObjectRel):  # reverse ForeignKey / OneToOne: the target row holds the link
        fk = rel.field
        linked = None if columns is None else tuple(sorted({*columns, fk.column}))
        lookup = _prefixed(before, "pk" if fk.target_field.primary_key else fk.target_field.name)
        return [Dependency(hop.target, fk.column, fk.cast_db_type(connection), lookup, linked, True)]
    return [by_target]


def _columns_read(parsed: TextPath, k: int) -> tuple[str, ...] | None:
    """The columns of hop ``k``'s target that the path reads: the next hop's link, or the attribute."""
    target = parsed.hops[k].target
    if k + 1 < len(parsed.hops):
        nxt = parsed.hops[k + 1].relation
        forward = not isinstance(nxt, models.ForeignObjectRel) and not nxt.many_to_many
        return (nxt.column,) if forward else ()
    if parsed.attribute is None or parsed.call:
        return None  # str() of the object or a method: any column may matter
    try:
        return (target._meta.get_field(parsed.attribute).column,)
    except FieldDoesNotExist:
        return None  # a property


def _prefixed(before: str, name: str) -> str:
    return f"{before}__{name}" if before else name

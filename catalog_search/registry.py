"""``SearchIndex`` declarations: which model is searchable and how.

Declarations are small objects on the model side, checked by Django system checks at startup
(see checks.py), read by indexing (what to store) and by search (what a query may filter on)::

    @catalog_search.register
    class ProductIndex(catalog_search.SearchIndex):
        model = Product
        text_fields = [SearchField("title", weight=3), SearchField("description")]
        image_field = "image"
        filter_fields = ["category", "brand", "price", "in_stock"]
        facet_fields = ["category", "brand", RangeFacet("price", [0, 25, 50, 100, 250])]
        display_fields = ["title", "category", "brand", "price", "in_stock"]
        sort_fields = ["price", "created"]  # sort=price, sort=-created

        def get_queryset(self):
            return Product.objects.filter(published=True)
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models

from catalog_search import conf, databases
from catalog_search.exceptions import InvalidFilter
from catalog_search.relations import Dependency, dependencies, parse_relation_path, parse_text_path

RANGE_LOOKUPS = ("gte", "lte", "gt", "lt")
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def parse_bool(value: Any) -> bool | None:
    """``value`` as a flag (true/false, 1/0, yes/no, on/off, any case) or None if it is none of those."""
    if isinstance(value, bool):
        return value
    return _BOOLEANS.get(str(value).strip().lower())


@dataclass(frozen=True)
class SearchField:
    """A text field that feeds BM25 and the text embedding; ``weight`` scales its term frequencies.

    ``name`` may follow relations ("brand__name", "tags__name": many values joined with ", ") and may
    end at a property or method. A change to a model along the path reindexes the objects that show it;
    ``depends_on`` names further relation paths ("brand") a property or method reads.
    """

    name: str
    weight: float = 1.0
    depends_on: Sequence[str] = ()


@dataclass(frozen=True)
class FilterField:
    """A field a query may filter on. Its kind follows the model field: boolean, range or exact."""

    name: str


@dataclass(frozen=True)
class QueryField:
    """A filter field whose values a query may name ("red", "tote", "Kestrel"): recognised in ``q``, they
    boost the products that have them (or, with ``hard``, filter on them). ``synonyms`` maps the shop's other
    words to a value (``{"trainers": "sneakers", "tote": "handbag"}``, or to several values); ``colors``
    also maps English color names to a basic color the field has ("crimson" -> red).
    Declared in priority order on ``SearchIndex.query_fields`` (docs/relevance.md, "Query understanding")."""

    name: str
    synonyms: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    colors: bool = False
    hard: bool = False


@dataclass(frozen=True)
class RankingSignal:
    """A numeric or boolean field that ranks products within their relevance ("popularity", "rating",
    "in_stock"): each candidate's value, scaled to 0..1 over the candidates, adds ``weight`` times the
    spread of their fused scores (docs/relevance.md, "Business ranking"). ``CATALOG_SEARCH["RANKING_WEIGHTS"]``
    overrides the weight per index label and field, without a deploy of code."""

    name: str
    weight: float = 0.1


@dataclass(frozen=True)
class FacetField:
    """Count matches per distinct value of ``name``."""

    name: str
    size: int = 20  # the most frequent values returned


@dataclass(frozen=True)
class RangeFacet:
    """Count matches per bucket ``[bounds[i], bounds[i+1])``; the last bucket is open-ended."""

    name: str
    bounds: Sequence[float] = field(default=(0, 25, 50, 100, 250, 500))


def _as_filter(item: str | FilterField) -> FilterField:
    return item if isinstance(item, FilterField) else FilterField(item)


def _as_search(item: str | SearchField) -> SearchField:
    return item if isinstance(item, SearchField) else SearchField(item)


def _as_query(item: str | QueryField) -> QueryField:
    return item if isinstance(item, QueryField) else QueryField(item)


def _as_facet(item: str | FacetField | RangeFacet) -> FacetField | RangeFacet:
    return FacetField(item) if isinstance(item, str) else item


def resolve_field(model: type[models.Model], path: str) -> models.Field:
    """The model field at ``path`` ("price", "brand__name"), following relations."""
    current: Any = model
    parts = path.split("__")
    for i, part in enumerate(parts):
        f = current._meta.get_field(part)
        if i < len(parts) - 1:
            if not f.is_relation or f.related_model is None:
                raise FieldDoesNotExist(f"{current.__name__}.{part} is not a relation")
            current = f.related_model
    return f


def multivalued(model: type[models.Model], path: str) -> bool:
    """Whether ``path`` crosses a to-many relation (one object can then have several values)."""
    for part in path.split("__"):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False
        if field.many_to_many or field.one_to_many:
            return True
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False


def filter_kind(model_field: models.Field) -> str:
    """ "boolean", "range" (numbers and dates: exact plus gte/lte/gt/lt) or "exact" (repeat for OR)."""
    if isinstance(model_field, models.BooleanField):
        return "boolean"
    numeric = (
        models.IntegerField,
        models.FloatField,
        models.DecimalField,
        models.DateField,
        models.DurationField,
    )  # DateTimeField is a DateField
    if isinstance(model_field, numeric) and not model_field.choices:
        return "range"
    return "exact"


class SearchIndex:
    """Declare how one model is indexed and searched. Subclass and pass to ``register``."""

    model: type[models.Model]
    text_fields: Sequence[str | SearchField] = ()
    image_field: str | None = None
    filter_fields: Sequence[str | FilterField] = ()
    facet_fields: Sequence[str | FacetField | RangeFacet] = ()
    display_fields: Sequence[str] = ()
    # Query understanding: the filter fields a query may name, highest priority first, and the numeric
    # filter field that price phrases ("under 50", "20-40 dollars") constrain.
    query_fields: Sequence[str | QueryField] = ()
    price_field: str | None = None
    # Fields results may be sorted by (``sort=price``, ``sort=-price``) instead of relevance: single-valued
    # model fields or forward relation paths ("brand__name").
    sort_fields: Sequence[str] = ()
    # Business ranking: numeric or boolean fields fused with relevance, each with its weight.
    ranking_signals: Sequence[str | RankingSignal] = ()

    def get_queryset(self) -> models.QuerySet:
        """Objects that belong in the index (override to index only published items, ...)."""
        return self.model._default_manager.all()

    def get_text(self, instance: models.Model) -> str:
        """The product text given to the text encoder (fields joined, highest weight first)."""
        pairs = sorted(zip(self.search_fields, self.field_texts(instance), strict=True), key=lambda p: -p[0].weight)
        return ". ".join(text for _, text in pairs if text)

    def field_texts(self, instance: models.Model) -> list[str]:
        """The text of each declared text field of ``instance``, in declaration order (relations followed)."""
        return [parse_text_path(self.model, f.name).read(instance) for f in self.search_fields]

    def with_related(self, queryset: models.QuerySet) -> models.QuerySet:
        """``queryset`` loading the related objects the text fields read: one query per relation and batch."""
        lookups = {parse_text_path(self.model, f.name).prefetch for f in self.search_fields}
        for path in (path for f in self.search_fields for path in f.depends_on):
            lookups.add("__".join(hop.accessor for hop in parse_relation_path(self.model, path)))
        return queryset.prefetch_related(*sorted(p for p in lookups if p))

    def dependencies(self) -> tuple[Dependency, ...]:
        """The related tables whose changes change this index's texts (relations.py)."""
        return dependencies(self.model, tuple(p for f in self.search_fields for p in (f.name, *f.depends_on)))

    # Normalized views of the declarations ---------------------------------------------------

    @property
    def label(self) -> str:
        """``app_label.modelname``, the ``type`` of a result."""
        return self.model._meta.label_lower

    @property
    def search_fields(self) -> list[SearchField]:
        return [_as_search(f) for f in self.text_fields]

    @property
    def filters(self) -> dict[str, FilterField]:
        return {f.name: f for f in map(_as_filter, self.filter_fields)}

    @property
    def understood_fields(self) -> list[QueryField]:
        return [_as_query(f) for f in self.query_fields]

    @property
    def ranking(self) -> list[RankingSignal]:
        """The ranking signals with their weights (``RANKING_WEIGHTS`` first); those weighing 0 left out."""
        overrides = (conf.settings().RANKING_WEIGHTS or {}).get(self.label, {})
        signals = [s if isinstance(s, RankingSignal) else RankingSignal(s) for s in self.ranking_signals]
        weighted = [RankingSignal(s.name, float(overrides.get(s.name, s.weight))) for s in signals]
        return [s for s in weighted if s.weight]

    @property
    def facets(self) -> list[FacetField | RangeFacet]:
        return [_as_facet(f) for f in self.facet_fields]

    @property
    def content_type(self):  # -> ContentType (imported lazily: this module loads before the apps)
        from django.contrib.contenttypes.models import ContentType

        chosen = databases.alias()  # in a search: read (once, then cached per database) from its database
        manager = ContentType.objects if chosen is None else ContentType.objects.db_manager(chosen)
        return manager.get_for_model(self.model)

    # Filters ------------------------------------------------------------------------------------

    def parse_filter_value(self, name: str, lookup: str, raw: Any) -> Any:
        """Validate one filter value against the model field; raise InvalidFilter with a fix hint."""
        model_field = resolve_field(self.model, name)
        kind = filter_kind(model_field)
        if lookup != "exact" and (kind != "range" or lookup not in RANGE_LOOKUPS):
            allowed = ", ".join(f"{name}__{op}" for op in RANGE_LOOKUPS) if kind == "range" else "none"
            raise InvalidFilter(f"Filter {name!r} does not support '__{lookup}' (range lookups: {allowed}).")
        if kind == "boolean":
            flag = parse_bool(raw)
            if flag is not None:
                return flag
            raise InvalidFilter(f"Filter {name!r} takes true or false, got {str(raw)[:50]!r}.")
        if isinstance(raw, str) and "\x00" in raw:
            raise InvalidFilter(f"Filter {name!r} contains a null byte.")
        try:
            value = model_field.to_python(raw)
        except (ValidationError, TypeError, ValueError, decimal.InvalidOperation):
            raise InvalidFilter(
                f"Filter {name!r} takes {self._type_hint(model_field)}, got {str(raw)[:50]!r}."
            ) from None
        if isinstance(value, float | decimal.Decimal) and not math.isfinite(value):
            raise InvalidFilter(f"Filter {name!r} takes a finite number, got {str(raw)[:50]!r}.")
        if value is None or (isinstance(value, str) and len(value) > 255):
            raise InvalidFilter(f"Filter {name!r} takes {self._type_hint(model_field)}.")
        return value

    @staticmethod
    def _type_hint(model_field: models.Field) -> str:
        if isinstance(model_field, models.DateTimeField):
            return "a date-time (ISO 8601)"
        if isinstance(model_field, models.DateField):
            return "a date (YYYY-MM-DD)"
        if isinstance(model_field, models.IntegerField):
            return "an integer"
        if isinstance(model_field, models.FloatField | models.DecimalField):
            return "a number"
        return "a text value"

    def display_values(self, instance: models.Model) -> dict[str, Any]:
        """JSON-ready ``fields`` of a result: declared display fields plus ``image_url``."""
        values = {name: jsonable(_get_path(instance, name)) for name in self.display_fields}
        if self.image_field:
            image = getattr(instance, self.image_field, None)
            values["image_url"] = image.url if image else None
        return values


def _get_path(instance: models.Model, path: str) -> Any:
    value: Any = instance
    for part in path.split("__"):
        value = getattr(value, part, None) if value is not None else None
    return value


def jsonable(value: Any) -> Any:
    """A field value as JSON can hold it (decimals and dates as strings, files as their URL)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if hasattr(value, "url") and hasattr(value, "name"):  # FieldFile
        return value.url if value.name else None
    if isinstance(value, dict | list):
        return value
    return str(value)


# The registry ------------------------------------------------------------------------------------

_registry: dict[type[models.Model], SearchIndex] = {}


def register(index: type[SearchIndex] | SearchIndex) -> Any:
    """Register a SearchIndex (class or instance). Usable as a class decorator; returns its argument."""
    instance = index() if isinstance(index, type) else index
    if not getattr(instance, "model", None):
        raise TypeError(f"{type(instance).__name__} must set 'model'")
    _registry[instance.model] = instance
    return index


def unregister(model: type[models.Model]) -> None:
    _registry.pop(model, None)


def get_indexes() -> list[SearchIndex]:
    return list(_registry.values())


def get_index(model: type[models.Model]) -> SearchIndex | None:
    """The index of ``model``, or of its concrete parent for proxy models."""
    return _registry.get(model) or _registry.get(model._meta.concrete_model)


def get_index_by_label(label: str) -> SearchIndex | None:
    return next((i for i in _registry.values() if i.label == label.lower()), None)


def indexes_for(labels: Iterable[str] | None = None) -> list[SearchIndex]:
    """Indexes for ``labels`` ("shop.product"), or all registered ones."""
    if labels is None:
        return get_indexes()
    found = []
    for label in labels:
        index = get_index_by_label(label)
        if index is None:
            raise LookupError(f"{label!r} is not registered with catalog_search")
        found.append(index)
    return found

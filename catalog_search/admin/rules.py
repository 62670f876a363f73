"""The query rules screen: for a query, pin products at positions, hide products, boost or bury products
matching a filter, or send the shopper to a page, optionally between two dates.

Django's model permissions guard it (``view_queryrule``, ``add_queryrule``, ...); every change is in the
admin log. A saved rule reaches every web process within ``RULES_REFRESH_SECONDS``.
"""

from __future__ import annotations

import math

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from catalog_search import rules
from catalog_search.admin.synonyms import index_choices
from catalog_search.analysis import get_analyzer
from catalog_search.exceptions import InvalidFilter
from catalog_search.models import QueryRule, RuleProduct
from catalog_search.registry import SearchIndex, get_indexes
from catalog_search.retrieval.query import parse_filters

MAX_FACTOR = 100.0


def _applying(index: str) -> list[SearchIndex]:
    return [i for i in get_indexes() if not index or i.label == index]


class QueryRuleForm(forms.ModelForm):
    class Meta:
        model = QueryRule
        fields = [
            "name", "enabled", "index", "match", "query", "starts_at", "ends_at",
            "boost_filter", "boost_factor", "redirect_url",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        help_text = QueryRule._meta.get_field("index").help_text
        self.fields["index"] = forms.ChoiceField(
            choices=index_choices(self.instance.index), required=False, help_text=help_text
        )

    def clean_query(self) -> str:
        query = " ".join(self.cleaned_data["query"].split())
        if not get_analyzer().terms(query):
            raise ValidationError("The query has no searchable word (only stop words or punctuation).")
        return query

    def clean_boost_factor(self) -> float:
        factor = self.cleaned_data["boost_factor"]
        if not math.isfinite(factor) or not 0 < factor <= MAX_FACTOR:
            raise ValidationError(f"A factor is above 0 (below 1 buries) and at most {MAX_FACTOR:g}.")
        return factor

    def clean_redirect_url(self) -> str:
        url = self.cleaned_data["redirect_url"].strip()
        if url and not rules.safe_redirect(url):
            raise ValidationError("A page of this site ('/sale/') or an http(s):// address.")
        return url

    def clean(self) -> dict:
        data = super().clean()
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            raise ValidationError({"ends_at": "The rule ends after it starts."})
        text, factor = (data.get("boost_filter") or "").strip(), data.get("boost_factor")
        if factor is not None and factor != 1.0 and not text:
            raise ValidationError({"boost_filter": "A factor other than 1 needs a filter: the products it boosts."})
        if text:
            self._check_filter(text, data.get("index", ""))
        return data

    @staticmethod
    def _check_filter(text: str, index: str) -> None:
        indexes = _applying(index)
        if not indexes:
            raise ValidationError({"index": "No registered index has this label."})
        try:
            parse_filters(rules.boost_filter(text), indexes)
        except InvalidFilter as exc:
            raise ValidationError({"boost_filter": str(exc)}) from exc


class RuleProductFormSet(forms.BaseInlineFormSet):
    """Pins need a position, no two pins share one, and every product exists when the rule is saved (it
    may be deleted later: the rule then skips it)."""

    def clean(self) -> None:
        super().clean()
        positions: set[int] = set()
        index = getattr(self.instance, "index", "")
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE"):
                continue
            action, position, oid = data.get("action"), data.get("position"), (data.get("object_id") or "").strip()
            if action == RuleProduct.Action.PIN:
                if position is None or not 1 <= position <= rules.MAX_POSITION:
                    form.add_error("position", f"A pin needs a position from 1 to {rules.MAX_POSITION}.")
                elif position in positions:
                    form.add_error("position", "Another pin of this rule has this position.")
                positions.add(position or 0)
            if oid and not _exists(oid, index):
                form.add_error("object_id", f"No product {oid!r} in {index or 'any index'}.")


def _exists(object_id: str, index: str) -> bool:
    for search_index in _applying(index):
        try:
            key = search_index.model._meta.pk.to_python(object_id)
        except ValidationError:
            continue
        if search_index.model._base_manager.filter(pk=key).exists():
            return True
    return False


class RuleProductInline(admin.TabularInline):
    model = RuleProduct
    formset = RuleProductFormSet
    extra = 1
    fields = ["action", "object_id", "position"]


@admin.register(QueryRule)
class QueryRuleAdmin(admin.ModelAdmin):
    form = QueryRuleForm
    inlines = [RuleProductInline]
    list_display = ["name", "match", "query", "scope", "enabled", "starts_at", "ends_at", "updated_at"]
    list_filter = ["enabled", "match", "index"]
    search_fields = ["name", "query"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "index"]}),
        ("When", {"fields": ["match", "query", "starts_at", "ends_at"]}),
        ("Then", {"fields": ["boost_filter", "boost_factor", "redirect_url"]}),
    ]

    @admin.display(description="index", ordering="index")
    def scope(self, obj: QueryRule) -> str:
        return obj.index or "every index"

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        rules.forget()

    def delete_model(self, request: HttpRequest, obj: QueryRule) -> None:
        super().delete_model(request, obj)
        rules.forget()

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        super().delete_queryset(request, queryset)
        rules.forget()

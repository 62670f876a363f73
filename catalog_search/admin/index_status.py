"""Admin: a "Reindex selected" action on every registered model's changelist, and an index status
page (per model counts, failures, encoders, last run, "Rebuild all", live progress).

Everything here needs the ``catalog_search.reindex`` permission; users without it get 403.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from catalog_search.admin.screens import Screen
from catalog_search.indexing import outbox
from catalog_search.indexing.enqueue import enqueue
from catalog_search.models import IndexRun, IndexStatus
from catalog_search.registry import SearchIndex, get_index, get_indexes
from catalog_search.status import full_status

PERMISSION = "catalog_search.reindex"


def can_reindex(request: HttpRequest) -> bool:
    return request.user.is_active and request.user.has_perm(PERMISSION)


def queue(request: HttpRequest, index: SearchIndex, object_ids: list[str] | None, kind: str) -> int:
    """Mark objects for re-encoding, record the run, enqueue; tell the user what happened."""
    total = outbox.mark(index, object_ids, force=True)
    IndexRun.objects.create(
        content_type=index.content_type, kind=kind, total=total, requested_by=request.user.get_username()
    )
    ids = object_ids if object_ids is not None else outbox.pending_ids(index)
    if not enqueue(index.label, ids):
        messages.warning(
            request,
            f"The task broker is unreachable: {total} {index.model._meta.verbose_name_plural} "
            "are saved in the outbox and will be indexed when it is back.",
        )
    return total


@admin.action(description="Reindex selected %(verbose_name_plural)s in the search index", permissions=["reindex"])
def reindex_selected(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    if not can_reindex(request):
        raise PermissionDenied
    index = get_index(queryset.model)
    if index is None:
        messages.error(request, f"{queryset.model._meta.label} is not registered with catalog_search.")
        return
    total = queue(request, index, [str(pk) for pk in queryset.values_list("pk", flat=True)], "reindex")
    messages.success(request, f"{total} {queryset.model._meta.verbose_name_plural} queued for reindexing.")


def attach_reindex_action(site: admin.AdminSite = admin.site) -> None:
    """Add the action to the ModelAdmin of every registered model (called from AppConfig.ready)."""
    for index in get_indexes():
        model_admin = site._registry.get(index.model)
        if model_admin is None or reindex_selected in (model_admin.actions or ()):
            continue
        model_admin.actions = [*(model_admin.actions or ()), reindex_selected]
        model_admin.has_reindex_permission = can_reindex


@admin.register(IndexStatus)
class IndexStatusAdmin(Screen):
    """The status page lives at the changelist URL of the table-less IndexStatus model."""

    permission = PERMISSION

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("status.json", view(self.status_json), name="catalog_search_status_json"),
            path("rebuild/", view(require_POST(self.rebuild)), name="catalog_search_rebuild"),
            path("", view(self.changelist_view), name="catalog_search_indexstatus_changelist"),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        self.guard(request)
        data = full_status()
        context = {
            **self.admin_site.each_context(request),
            "title": "Search index status",
            "opts": self.model._meta,
            "status": data,
            "running": any(m["pending"] for m in data["models"]),
            "status_url": reverse("admin:catalog_search_status_json"),
            "rebuild_url": reverse("admin:catalog_search_rebuild"),
        }
        return TemplateResponse(request, "admin/catalog_search/index_status.html", context)

    def status_json(self, request: HttpRequest) -> JsonResponse:
        self.guard(request)
        return JsonResponse(full_status())

    def rebuild(self, request: HttpRequest) -> HttpResponse:
        self.guard(request)
        total = sum(queue(request, index, None, "rebuild") for index in get_indexes())
        messages.success(request, f"Rebuild started: {total} objects queued.")
        return HttpResponseRedirect(reverse("admin:catalog_search_indexstatus_changelist"))

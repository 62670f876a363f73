"""A read-only admin screen at a model's changelist URL, behind one permission: the index status page,
the search analytics."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest


class Screen(admin.ModelAdmin):
    """Visible to users with ``permission`` (and active); it adds, changes and deletes nothing."""

    permission = ""

    def allowed(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm(self.permission)

    def guard(self, request: HttpRequest) -> None:
        if not self.allowed(request):
            raise PermissionDenied

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.allowed(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

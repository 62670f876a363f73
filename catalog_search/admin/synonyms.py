"""The synonyms screen: one row per line of the Solr / Elasticsearch synonyms format, checked as it is saved
(empty terms, cycles, sizes: catalog_search/synonyms.py), imported from and exported to that format.

Django's model permissions guard it: ``view_synonym`` to see and export, ``add_synonym`` to add and import,
``change_synonym`` and ``delete_synonym`` to edit. Every change (an import too) is in the admin log. A
saved change reaches every web process's searches within ``SYNONYMS_REFRESH_SECONDS``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from catalog_search import synonyms
from catalog_search.models import Synonym
from catalog_search.registry import get_indexes

MAX_IMPORT_BYTES = 2 * 1024 * 1024


def index_choices(current: str = "") -> list[tuple[str, str]]:
    labels = [index.label for index in get_indexes()]
    if current and current not in labels:  # a row of an index since unregistered stays editable
        labels.append(current)
    return [("", "Every index"), *((label, label) for label in labels)]


class SynonymForm(forms.ModelForm):
    class Meta:
        model = Synonym
        fields = ["line", "index", "enabled"]
        widgets = {"line": forms.Textarea(attrs={"rows": 2, "cols": 80})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["index"] = forms.ChoiceField(
            choices=index_choices(self.instance.index),
            required=False,
            help_text=Synonym._meta.get_field("index").help_text,
        )

    def clean(self) -> dict:
        data = super().clean()
        line = data.get("line")
        if line is None:
            return data
        try:
            if data.get("enabled", True):
                rule = synonyms.validate(line, data.get("index", ""), excluding=self.instance.pk)
            else:
                rule = synonyms.parse_line(line)
        except ValidationError as exc:
            raise ValidationError({"line": exc.messages}) from exc
        data["line"] = rule.line()  # the format's own spelling: one space after each comma
        return data


class ImportForm(forms.Form):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80}),
        required=False,
        label="Lines",
        help_text="One rule per line: 'sneakers, trainers' or 'tee => t-shirt'; lines starting with # are comments.",
    )
    file = forms.FileField(required=False, help_text="or a synonyms file (UTF-8), as Solr and Elasticsearch read it")
    index = forms.ChoiceField(choices=(), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["index"].choices = index_choices()

    def clean(self) -> dict:
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                raise ValidationError(f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MiB.")
            try:
                data["text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ValidationError("The file is not UTF-8 text.") from exc
        if not (data.get("text") or "").strip():
            raise ValidationError("Paste some lines or choose a file.")
        return data


@admin.action(description="Export selected synonyms (Solr / Elasticsearch format)", permissions=["view"])
def export_selected(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
    return _file(synonyms.export_lines(queryset))


def _file(text: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="synonyms.txt"'
    return response


@admin.register(Synonym)
class SynonymAdmin(admin.ModelAdmin):
    form = SynonymForm
    list_display = ["line", "scope", "enabled", "updated_at"]
    list_filter = ["enabled", "index"]
    search_fields = ["line"]
    actions = [export_selected]
    change_list_template = "admin/catalog_search/synonym_changelist.html"

    @admin.display(description="index", ordering="index")
    def scope(self, obj: Synonym) -> str:
        return obj.index or "every index"

    def save_model(self, request: HttpRequest, obj: Synonym, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        synonyms.forget()

    def delete_model(self, request: HttpRequest, obj: Synonym) -> None:
        super().delete_model(request, obj)
        synonyms.forget()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().delete_queryset(request, queryset)
        synonyms.forget()

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_view), name="catalog_search_synonym_import"),
            path("export/", view(self.export_view), name="catalog_search_synonym_export"),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return _file(synonyms.export_lines(Synonym.objects.all()))

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        errors: list[tuple[int, str, str]] = []
        if request.method == "POST" and form.is_valid():
            with transaction.atomic():
                done = synonyms.import_lines(form.cleaned_data["text"], index=form.cleaned_data["index"])
                for row in done.created:
                    self.log_addition(request, row, [{"added": {"name": "synonym (imported)", "object": row.line}}])
            errors = done.errors
            if not errors:
                messages.success(request, f"Imported {len(done.created)} synonyms ({done.present} already present).")
                return HttpResponseRedirect(reverse("admin:catalog_search_synonym_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import synonyms",
            "opts": self.model._meta,
            "form": form,
            "errors": errors,
        }
        return TemplateResponse(request, "admin/catalog_search/synonym_import.html", context)

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class CatalogSearchConfig(AppConfig):
    name = "catalog_search"
    verbose_name = "Catalog search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from catalog_search import checks  # noqa: F401  (registers the system checks)

        # Like admin.py for the admin: each app declares its indexes in search_indexes.py.
        autodiscover_modules("search_indexes")
        from catalog_search.indexing import signals

        signals.connect()
        if apps_has_admin():
            from catalog_search.admin import attach_reindex_action

            attach_reindex_action()


def apps_has_admin() -> bool:
    from django.apps import apps

    return apps.is_installed("django.contrib.admin")

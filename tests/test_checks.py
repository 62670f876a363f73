"""Django system checks for the vector extension and the SearchIndex declarations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks
from django.db import connection, transaction

from catalog_search import RangeFacet, SearchField, SearchIndex
from catalog_search.checks import _index_errors, check_indexes, check_vector_extension
from demo_project.shop.models import Product


class _Rollback(Exception):
    pass


@pytest.mark.django_db
def test_vector_extension_present_passes():
    assert check_vector_extension(databases=["default"]) == []


@pytest.mark.django_db
def test_vector_extension_missing_is_an_error():
    # DDL is transactional in PostgreSQL: drop the extension inside a transaction and roll it back.
    with pytest.raises(_Rollback), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DROP EXTENSION vector CASCADE")
        errors = check_vector_extension(databases=["default"])
        assert [e.id for e in errors] == ["catalog_search.E001"]
        assert "CREATE EXTENSION vector" in errors[0].hint
        raise _Rollback
    assert check_vector_extension(databases=["default"]) == []


def test_database_check_is_skipped_without_databases():
    assert check_vector_extension(databases=None) == []


def test_registered_indexes_are_valid():
    assert check_indexes() == []


def test_missing_and_wrong_fields_are_reported():
    class BrokenIndex(SearchIndex):
        model = Product
        text_fields = [SearchField("title"), SearchField("subtitle"), SearchField("description", weight=0)]
        image_field = "title"
        filter_fields = ["colour", "brand__name"]
        facet_fields = ["size", RangeFacet("category", [0, 10]), RangeFacet("price", [50, 10])]
        display_fields = ["nope"]

    messages = [m.msg for m in _index_errors(BrokenIndex())]
    assert all(isinstance(m, checks.Error) and m.id == "catalog_search.E003" for m in _index_errors(BrokenIndex()))
    assert messages == [
        "BrokenIndex: text field 'subtitle' cannot be read: 'subtitle' is not a field, relation, property or method "
        "of shop.Product.",
        "BrokenIndex: text field 'description' needs a positive weight.",
        "BrokenIndex: image_field 'title' must be an ImageField or FileField.",
        "BrokenIndex: filter field 'colour' is not a field of shop.Product.",
        "BrokenIndex: filter field 'brand__name' is not a field of shop.Product.",
        "BrokenIndex: facet field 'size' is not a field of shop.Product.",
        "BrokenIndex: RangeFacet 'category' must be a numeric field.",
        "BrokenIndex: RangeFacet 'price' needs at least two strictly increasing bounds.",
        "BrokenIndex: display field 'nope' is not an attribute of shop.Product.",
    ]


@pytest.mark.parametrize(
    ("names", "lag", "says"),
    [
        (["replica"], 30, "names 'replica', which is not in DATABASES"),
        (["default", "elsewhere"], 30, "names 'elsewhere', which is not in DATABASES"),
        ("default", 30, "it takes a list of database aliases"),
        ([1], 30, "it takes a list of database aliases"),
        ([], 0, "REPLICA_MAX_LAG_SECONDS'] is 0"),
    ],
)
def test_wrong_search_databases_are_a_system_check_error(names, lag, says, settings):
    from catalog_search.checks import check_search_databases

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "SEARCH_DATABASES": names, "REPLICA_MAX_LAG_SECONDS": lag}
    (error,) = check_search_databases()
    assert error.id == "catalog_search.E012" and error.level == checks.ERROR and says in error.msg


def test_search_databases_in_databases_pass_the_check(settings):
    from catalog_search.checks import check_search_databases

    assert check_search_databases() == []  # the default: none
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "SEARCH_DATABASES": ["default"], "REPLICA_MAX_LAG_SECONDS": 5}
    assert check_search_databases() == []


@pytest.mark.parametrize("value", [0, 2, "yes", None])
def test_a_wrong_parallel_retrieval_setting_is_a_system_check_error(value, settings):
    from catalog_search.checks import check_parallel_setting

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "PARALLEL_RETRIEVAL": value}
    (error,) = check_parallel_setting()
    assert error.id == "catalog_search.E006" and error.level == checks.ERROR


@pytest.mark.parametrize("value", [True, False])
def test_parallel_retrieval_true_or_false_passes_the_check(value, settings):
    from catalog_search.checks import check_parallel_setting

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "PARALLEL_RETRIEVAL": value}
    assert check_parallel_setting() == []


@pytest.mark.parametrize("value", ["most", "75", "120%", 1.5, None, True])
def test_a_wrong_minimum_should_match_is_a_system_check_error(value, settings):
    from catalog_search.checks import check_minimum_should_match_setting

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "MINIMUM_SHOULD_MATCH": value}
    errors = check_minimum_should_match_setting()
    if value == "75":  # a count given as text, as Elasticsearch takes it: at least 75 terms (all of them)
        assert errors == []
        return
    (error,) = errors
    assert error.id == "catalog_search.E007" and error.level == checks.ERROR and repr(value) in error.msg


@pytest.mark.parametrize("value", [1, 2, -1, "75%", "-25%", "100%"])
def test_a_valid_minimum_should_match_passes_the_check(value, settings):
    from catalog_search.checks import check_minimum_should_match_setting

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "MINIMUM_SHOULD_MATCH": value}
    assert check_minimum_should_match_setting() == []


@pytest.mark.parametrize(
    "values", [{"DEFAULT_FUSION": "max"}, {"DEFAULT_FUSION": None}, {"DEFAULT_ALPHA": 1.5}, {"DEFAULT_ALPHA": "0.7"}]
)
def test_a_wrong_default_fusion_or_alpha_is_a_system_check_error(values, settings):
    from catalog_search.checks import check_fusion_settings

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, **values}
    (error,) = check_fusion_settings()
    assert error.id == "catalog_search.E009" and error.level == checks.ERROR
    assert repr(next(iter(values.values()))) in error.msg


@pytest.mark.parametrize("values", [{}, {"DEFAULT_FUSION": "weighted", "DEFAULT_ALPHA": 1}, {"DEFAULT_ALPHA": 0.0}])
def test_valid_fusion_defaults_pass_the_check(values, settings):
    from catalog_search.checks import check_fusion_settings

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, **values}
    assert check_fusion_settings() == []


@pytest.mark.parametrize("values", [{"CANDIDATES": "many"}, {"RRF_K": None}, {"EXPANSION_THRESHOLD": [0.5]}])
def test_a_setting_that_is_not_a_number_is_a_system_check_error(values, settings):
    from catalog_search.checks import check_setting_types

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, **values}
    (error,) = check_setting_types()
    assert error.id == "catalog_search.E010" and error.level == checks.ERROR
    assert repr(next(iter(values))) in error.msg and repr(next(iter(values.values()))) in error.msg


def test_settings_are_typed_and_follow_changes(settings):
    from catalog_search import conf
    from catalog_search.checks import check_setting_types

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "CANDIDATES": "300", "BM25_B": 1, "THREADS": None}
    assert check_setting_types() == []
    snapshot = conf.settings()
    assert snapshot.CANDIDATES == 300 and isinstance(snapshot.BM25_B, float) and snapshot.THREADS is None
    assert conf.settings() is snapshot  # read once, not per call
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "CANDIDATES": 50}
    assert conf.settings().CANDIDATES == 50


def _check_output(project, *, import_app: bool) -> str:
    """``manage.py check`` of a minimal project that configures Celery in settings, with or without the
    ``from .celery import app`` line in its package (a subprocess: the test process has the demo's app)."""
    package = project / "shopproj"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("from .celery import app as celery_app\n" if import_app else "")
    (package / "celery.py").write_text(
        "from celery import Celery\napp = Celery('shopproj')\n"
        "app.config_from_object('django.conf:settings', namespace='CELERY')\n"
    )
    (package / "settings.py").write_text(
        "SECRET_KEY = 'x'\nINSTALLED_APPS = ['django.contrib.contenttypes', 'catalog_search']\n"
        "CELERY_BROKER_URL = 'redis://127.0.0.1:1/0'\n"
        f"CATALOG_SEARCH = {{'MODEL': {str(project / 'no-model')!r}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{project}{os.pathsep}{Path(__file__).parents[1]}"}
    env["DJANGO_SETTINGS_MODULE"] = "shopproj.settings"
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"], env=env, cwd=project, capture_output=True, text=True, timeout=120
    )
    return done.stdout + done.stderr


def test_tasks_bound_to_celerys_default_app_are_a_warning(tmp_path):
    output = _check_output(tmp_path, import_app=False)
    assert "catalog_search.W004" in output and "from .celery import app as celery_app" in output
    assert "catalog_search.W004" not in _check_output(tmp_path, import_app=True)


def test_runserver_with_persistent_connections_is_a_warning(monkeypatch):
    from django.conf import settings

    from catalog_search.checks import check_runserver_connections

    # In place (not a settings override, which Django warns about for DATABASES): the check only reads it.
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 60)
    monkeypatch.setattr(sys, "argv", ["manage.py", "runserver"])
    assert [m.id for m in check_runserver_connections()] == ["catalog_search.W005"]
    monkeypatch.setattr(sys, "argv", ["gunicorn", "demo_project.wsgi"])
    assert check_runserver_connections() == []
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 0)
    monkeypatch.setattr(sys, "argv", ["manage.py", "runserver"])
    assert check_runserver_connections() == []


@pytest.mark.django_db
def test_a_deployment_that_cannot_fit_the_database_is_a_warning(settings):
    from catalog_search.checks import check_connection_budget

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
        )
        available = cursor.fetchone()[0]
    base = {**settings.CATALOG_SEARCH, "PARALLEL_RETRIEVAL": True}
    settings.CATALOG_SEARCH = {**base, "DEPLOYMENT": {"web_processes": 2, "threads": 4, "worker_processes": 1}}
    assert check_connection_budget(databases=["default"]) == []  # 2 x (4 + 1) + 2 + 1 = 13
    threads = available // 2  # 2 x (threads + 1) + 3 > available
    settings.CATALOG_SEARCH = {**base, "DEPLOYMENT": {"web_processes": 2, "threads": threads, "worker_processes": 1}}
    (warning,) = check_connection_budget(databases=["default"])
    assert warning.id == "catalog_search.W006" and f"which allows {available}" in warning.msg
    settings.CATALOG_SEARCH = {**base, "DEPLOYMENT": {"web_processes": "two"}}
    assert [m.id for m in check_connection_budget(databases=["default"])] == ["catalog_search.W006"]
    assert check_connection_budget(databases=None) == []

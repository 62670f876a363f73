"""Index storage in PostgreSQL. Every process (web, workers, CLI) sees the same index.

- ``Document``: one row per indexed object (content type + primary key), its BM25 length and terms.
- ``Posting``: BM25 postings, one row per (term, document) with the weighted term frequency.
- ``TermStat`` / ``CorpusStat``: document frequencies and corpus size/length per content type,
  maintained incrementally so re-indexing one product never rebuilds anything.
- ``Encoder``: the identity of each model that produced embeddings; one is active for search.
- ``Embedding``: image and text vectors (pgvector) per (document, encoder). Columns are untyped
  ``vector`` because the dimension depends on the model; each encoder gets its own partial HNSW
  expression indexes (see indexing/vectors.py).

Queries on these tables are plain SQL in ``catalog_search/retrieval/``; see docs/architecture.md.
"""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField


class Encoder(models.Model):
    """One encoder (model + weights) whose vectors are stored in ``Embedding``."""

    class State(models.TextChoices):
        BUILDING = "building", "building"
        ACTIVE = "active", "active"
        RETIRED = "retired", "retired"

    identity = models.CharField(max_length=255, unique=True, help_text="model name @ content fingerprint")
    name = models.CharField(max_length=1024, help_text="the CATALOG_SEARCH['MODEL'] value that loads it")
    dim = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.BUILDING)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["state"], condition=models.Q(state="active"), name="catalog_search_one_active_encoder"
            )
        ]

    def __str__(self) -> str:
        return f"{self.identity} ({self.state})"


class Document(models.Model):
    """One indexed object."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64)
    length = models.FloatField(help_text="weighted number of terms (BM25 document length)")
    terms = ArrayField(models.TextField(), default=list, help_text="distinct terms, for df bookkeeping")
    content_hash = models.CharField(max_length=64, blank=True, help_text="hash of the indexed text and image name")
    error = models.TextField(blank=True, help_text="why the last indexing attempt failed, if it did")
    indexed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["content_type", "object_id"], name="catalog_search_doc_object")]

    def __str__(self) -> str:
        return f"{self.content_type_id}:{self.object_id}"


class Posting(models.Model):
    """Term frequency of ``term`` in ``document`` (weighted by field).

    The document's content type, object id and length are copied here (postings are always rewritten
    together with their document) and the primary key index INCLUDEs them (migration 0002), so BM25
    scoring and the facets' matched set are index-only scans of the query terms' postings, with no
    lookup of each matching document (docs/benchmarks.md, BM25).
    """

    pk = models.CompositePrimaryKey("term", "document")
    term = models.TextField()
    document = models.ForeignKey(Document, on_delete=models.DO_NOTHING, related_name="+")
    tf = models.FloatField()
    # No foreign-key constraint or index: the document row carries them; these are read-only copies.
    content_type = models.ForeignKey(
        ContentType, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    object_id = models.CharField(max_length=64)
    length = models.FloatField(help_text="the document's BM25 length")


class TermStat(models.Model):
    """Number of documents of a content type containing ``term``."""

    pk = models.CompositePrimaryKey("content_type", "term")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    term = models.TextField()
    df = models.IntegerField()


class CorpusStat(models.Model):
    """Document count and total length per content type (avgdl = total_length / doc_count)."""

    content_type = models.OneToOneField(ContentType, on_delete=models.CASCADE, primary_key=True, related_name="+")
    doc_count = models.BigIntegerField(default=0)
    total_length = models.FloatField(default=0)


class Embedding(models.Model):
    """Vectors of one document by one encoder. L2-normalized, so cosine distance = 1 - dot product."""

    pk = models.CompositePrimaryKey("document", "encoder")
    document = models.ForeignKey(Document, on_delete=models.DO_NOTHING, related_name="+")
    encoder = models.ForeignKey(Encoder, on_delete=models.DO_NOTHING, related_name="+")
    # Denormalized from Document so filters apply inside the ANN scan without a join.
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64)
    image = VectorField(null=True, blank=True)
    text = VectorField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["encoder", "content_type", "object_id"], name="catalog_search_emb_obj")]


class OutboxEntry(models.Model):
    """An object that needs (re)indexing or removal.

    Written by a database trigger on each registered model's table, in the same transaction as the
    change (so bulk updates, raw SQL and crashes after commit lose nothing). ``version`` is new with
    every change (from the sequence ``catalog_search_outbox_version``, never issued twice): a worker
    writes its result only if the version it read is still current.
    """

    class Action(models.TextChoices):
        INDEX = "index", "index"
        DELETE = "delete", "delete"

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.INDEX)
    version = models.BigIntegerField(default=1)
    force = models.BooleanField(default=False, help_text="re-encode even if the content did not change")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        db_table = "catalog_search_outbox"
        verbose_name_plural = "outbox entries"
        constraints = [
            models.UniqueConstraint(fields=["content_type", "object_id"], name="catalog_search_outbox_object")
        ]
        indexes = [models.Index(fields=["content_type", "updated_at"], name="catalog_search_outbox_ct")]

    def __str__(self) -> str:
        return f"{self.action} {self.content_type_id}:{self.object_id} v{self.version}"


class IndexRun(models.Model):
    """A stretch of indexing, for "last run" and progress in the admin and ``status``: a reindex or rebuild
    request, or ("updates") the workers' processing of saved changes, from the first batch until the
    model's outbox is empty."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, default="rebuild")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="objects indexed, removed or found unchanged")
    requested_by = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"{self.kind} of {self.content_type_id} at {self.started_at:%Y-%m-%d %H:%M}"


class IndexStatus(models.Model):
    """No table: carries the ``catalog_search.reindex`` permission and the admin status page."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("reindex", "Can reindex and rebuild the search index")]
        verbose_name = verbose_name_plural = "index status"


class Vocabulary(models.Model):
    """The catalog's words embedded by one encoder, for query expansion (retrieval/expansion/).

    ``words`` are surface words of the indexed texts (one per index term: its most frequent spelling),
    ``vectors`` their unit-length float32 embeddings, row-major, ``len(words) * dim * 4`` bytes. Built by the
    sweep (``indexing.vocabulary.refresh``) or ``manage.py catalog_search vocabulary``; a word whose term has left the
    index is skipped at query time.
    """

    encoder = models.OneToOneField(Encoder, on_delete=models.CASCADE, primary_key=True, related_name="+")
    words = ArrayField(models.TextField(), default=list)
    terms = ArrayField(models.TextField(), default=list, help_text="each word's index term")
    vectors = models.BinaryField()
    built_at = models.DateTimeField(auto_now=True)


class FieldValue(models.Model):
    """The distinct values of a query field (``SearchIndex.query_fields``) among the indexed objects, with
    how many objects have each: what query understanding recognises in ``q``. A batch the indexer writes
    adds its new values at once; the sweep recounts them exactly and drops those no object has any more
    (indexing/values.py)."""

    pk = models.CompositePrimaryKey("content_type", "field", "value")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    field = models.CharField(max_length=255)
    value = models.TextField()
    count = models.BigIntegerField(default=0)


class Spelling(models.Model):
    """The surface words of the indexed texts ("sneakers") with their index terms ("sneaker"): typo
    correction looks up the catalog word nearest to a word no document contains (a trigram index),
    suggestions the words a prefix begins (a btree ``text_pattern_ops`` index), and both read how many
    documents have its term from ``TermStat``, so a word whose term has left the index is never offered. Written with the documents (indexing/documents.py), never deleted one by one."""

    pk = models.CompositePrimaryKey("content_type", "word")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    word = models.TextField()
    term = models.TextField()

    class Meta:
        indexes = [
            GinIndex(fields=["word"], opclasses=["gin_trgm_ops"], name="catalog_search_spelling_trgm"),
            # Suggestions' prefix look-up (word LIKE 'sne%'): a btree answers LIKE prefixes only under the C
            # collation or with text_pattern_ops, whatever the database's collation.
            models.Index(
                fields=["content_type", "word"],
                opclasses=["int4_ops", "text_pattern_ops"],
                name="catalog_search_spelling_prefix",
            ),
        ]


class Synonym(models.Model):
    """One line of synonyms staff keep in the admin, in the Solr / Elasticsearch format: ``a, b, c``
    (equivalent) or ``a, b => c`` (replaced). Applied to queries at search time (synonyms.py)."""

    index = models.CharField(
        max_length=255, blank=True, default="", help_text="the index label it applies to; blank: every index"
    )
    line = models.TextField(help_text="'sneakers, trainers, running shoes' or 'tee, tshirt => t-shirt'")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["index", "pk"]

    def __str__(self) -> str:
        return self.line


class QueryRule(models.Model):
    """A merchandising rule staff keep in the admin: for a query (exactly, or containing some words), pin
    products at positions, hide products, boost or bury those matching a filter, or send the shopper to a
    page; optionally only between two dates (rules.py, retrieval/rules.py)."""

    class Match(models.TextChoices):
        IS = "is", "the query is"
        CONTAINS = "contains", "the query contains"

    name = models.CharField(max_length=200)
    index = models.CharField(
        max_length=255, blank=True, default="", help_text="the index label it applies to; blank: every index"
    )
    match = models.CharField(max_length=16, choices=Match.choices, default=Match.IS)
    query = models.CharField(max_length=255, help_text="compared word by word, as the index compares words")
    enabled = models.BooleanField(default=True)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="blank: from now on")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="blank: until disabled")
    boost_filter = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="products matching it are boosted: brand=Kestrel&in_stock=true",
    )
    boost_factor = models.FloatField(default=1.0, help_text="multiplies their score: 1.5 boosts, 0.5 buries")
    redirect_url = models.CharField(max_length=500, blank=True, default="", help_text="send the shopper here instead")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name


class RuleProduct(models.Model):
    """A product a ``QueryRule`` pins at a position (1 is the first result) or hides."""

    class Action(models.TextChoices):
        PIN = "pin", "pin"
        HIDE = "hide", "hide"

    rule = models.ForeignKey(QueryRule, on_delete=models.CASCADE, related_name="products")
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.PIN)
    object_id = models.CharField(max_length=255, help_text="the product's primary key")
    position = models.PositiveSmallIntegerField(null=True, blank=True, help_text="pins: 1 is the first result")

    class Meta:
        ordering = ["rule", "action", "position", "pk"]
        verbose_name = "pinned or hidden product"

    def __str__(self) -> str:
        return f"{self.action} {self.object_id}" + (f" at {self.position}" if self.action == "pin" else "")


class SearchEvent(models.Model):
    """One search a shopper made (text, photo or both; never the photo itself), for the analytics screen:
    written in batches off the request path (analytics/record.py), purged after ANALYTICS_RETENTION_DAYS."""

    search_id = models.UUIDField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=16)  # "text", "photo", "photo+text", "similar"
    query = models.CharField(max_length=512, blank=True)  # as typed, folded to lower case and one space
    understood = models.JSONField(default=dict, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    results = models.PositiveIntegerField()  # the matched set's size (total)
    took_ms = models.FloatField()
    visitor = models.CharField(max_length=64, blank=True)  # the browser's anonymous id
    user_id = models.CharField(max_length=64, blank=True)  # only with ANALYTICS_USER_IDS

    class Meta:
        indexes = [models.Index(fields=["query", "created_at"], name="catalog_search_event_query")]
        permissions = [("view_analytics", "Can view search analytics")]
        verbose_name = "search"
        verbose_name_plural = "search analytics"


class SearchInteraction(models.Model):
    """A shopper's click on a result, or an add to cart from it, tied to the search it came from."""

    class Kind(models.TextChoices):
        CLICK = "click", "click"
        ADD_TO_CART = "add_to_cart", "add to cart"

    search_id = models.UUIDField(db_index=True)  # SearchEvent.search_id (written apart: no foreign key)
    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    object_type = models.CharField(max_length=255)  # the index label
    object_id = models.CharField(max_length=64)
    position = models.PositiveIntegerField(null=True, blank=True)  # 1 is the first result
    visitor = models.CharField(max_length=64, blank=True)

"""Text fields through relations (ForeignKey, many-to-many, reverse ForeignKey), properties and methods:
what the indexer reads, what the system check accepts, and which related changes put the dependent
objects in the outbox (relations.py, the dependency triggers, ``catalog_search.reindex``)."""

from __future__ import annotations

import pytest
from django.core.exceptions import FieldDoesNotExist

import catalog_search
from catalog_search import SearchField
from catalog_search.checks import _index_errors
from catalog_search.indexing import enqueue, outbox, signals
from catalog_search.indexing.sync import reindex as reindex_sync
from catalog_search.indexing.triggers import install_triggers
from catalog_search.models import OutboxEntry
from catalog_search.registry import get_index
from catalog_search.relations import parse_text_path
from tests.testapp.models import Article, Author, Comment, Tag

pytestmark = pytest.mark.django_db


class RelatedArticleIndex(catalog_search.SearchIndex):
    model = Article
    text_fields = [
        SearchField("headline", weight=2),
        SearchField("author__name"),
        SearchField("tags__name"),
        SearchField("comments__text"),
        SearchField("byline", depends_on=("author",)),
        SearchField("section_label"),
    ]
    filter_fields = ["section"]


@pytest.fixture
def related_index():
    original = get_index(Article)
    index = RelatedArticleIndex()
    catalog_search.register(index)
    install_triggers([index])  # inside the test's transaction: rolled back with it
    yield index
    catalog_search.register(original)


def article(headline: str, **kwargs) -> Article:
    return Article.objects.create(headline=headline, body="", section=kwargs.pop("section", "news"), **kwargs)


def queued(index) -> set[str]:
    return set(OutboxEntry.objects.filter(content_type=index.content_type).values_list("object_id", flat=True))


def drain(index) -> None:
    outbox.process(index, sorted(queued(index)))
    assert not queued(index)


def found(q: str) -> list[str]:
    return [h.object.headline for h in catalog_search.search(q=q, mode="bm25", models=["testapp.article"])]


def test_the_indexer_reads_through_relations_properties_and_methods(related_index):
    ada = Author.objects.create(name="Ada Quill", country="Norway")
    post = article("Winter coats", author=ada)
    post.tags.add(Tag.objects.create(name="wool"), Tag.objects.create(name="alpaca"))
    Comment.objects.create(article=post, text="Warm and light")
    texts = related_index.field_texts(Article.objects.get(pk=post.pk))
    assert texts == ["Winter coats", "Ada Quill", "wool, alpaca", "Warm and light", "from Norway", "news section"]
    assert related_index.field_texts(article("Orphan")) == ["Orphan", "", "", "", "", "news section"]


def test_related_text_is_searchable(related_index, encoder):
    ada = Author.objects.create(name="Quillfeather", country="Norway")
    post = article("Winter coats", author=ada)
    post.tags.add(Tag.objects.create(name="merino"))
    reindex_sync(related_index, encoder)
    assert found("quillfeather") == found("merino") == found("norway") == ["Winter coats"]


def test_one_parser_decides_for_the_check_and_the_indexer(related_index):
    assert _index_errors(related_index) == []

    class Broken(RelatedArticleIndex):
        text_fields = [
            SearchField("author__nickname"),
            SearchField("headline__name"),
            SearchField("byline", depends_on=("section",)),
        ]

    messages = [e.msg for e in _index_errors(Broken())]
    assert any("'nickname' is not a field, relation, property or method of testapp.Author" in m for m in messages)
    assert any("'headline' is not a relation of testapp.Article" in m for m in messages)
    assert any("depends_on 'section'" in m for m in messages)
    for path in ("author__nickname", "headline__name"):
        with pytest.raises(FieldDoesNotExist):
            parse_text_path(Article, path)


def test_related_changes_put_the_dependents_in_the_outbox(related_index, encoder):
    ada, bo = Author.objects.create(name="Ada", country="Norway"), Author.objects.create(name="Bo")
    first, second, other = article("First", author=ada), article("Second", author=ada), article("Other", author=bo)
    wool = Tag.objects.create(name="wool")
    drain(related_index)
    ids = {a: str(a.pk) for a in (first, second, other)}

    Author.objects.filter(pk=ada.pk).update(name="Ada Lovelace")  # QuerySet.update: the ORM sends no signal
    assert queued(related_index) == {ids[first], ids[second]}
    drain(related_index)
    assert sorted(found("lovelace")) == ["First", "Second"]

    bo.country = "Peru"  # read by the byline property through depends_on=("author",)
    bo.save()
    assert queued(related_index) == {ids[other]}
    drain(related_index)

    ada.refresh_from_db()
    ada.save()  # nothing the text reads changed: no dependent is queued
    assert queued(related_index) == set()

    other.tags.add(wool)  # a through-table row
    assert queued(related_index) == {ids[other]}
    wool.name = "merino"
    wool.save()
    assert queued(related_index) == {ids[other]}
    drain(related_index)
    assert found("merino") == ["Other"]

    comment = Comment.objects.create(article=first, text="superb stitching")
    assert queued(related_index) == {ids[first]}
    drain(related_index)
    comment.article = second  # moved: both the old and the new article change
    comment.save()
    assert queued(related_index) == {ids[first], ids[second]}
    drain(related_index)
    assert found("stitching") == ["Second"]
    comment.delete()
    assert queued(related_index) == {ids[second]}
    drain(related_index)
    assert found("stitching") == []


def test_reindex_queues_objects_and_refuses_what_it_cannot_index(related_index, django_capture_on_commit_callbacks):
    posts = [article(f"Post {i}") for i in range(3)]
    drain(related_index)
    with django_capture_on_commit_callbacks() as callbacks:
        assert catalog_search.reindex(Article.objects.filter(pk__in=[p.pk for p in posts[:2]])) == 2
        assert catalog_search.reindex(posts[2], force=True) == 1
    assert len(callbacks) == 2  # the enqueue waits for the commit
    assert queued(related_index) == {str(p.pk) for p in posts}
    assert OutboxEntry.objects.get(object_id=str(posts[2].pk)).force
    with pytest.raises(LookupError, match="testapp.Tag is not registered"):
        catalog_search.reindex(Tag.objects.all())
    with pytest.raises(ValueError, match="not saved"):
        catalog_search.reindex([Article(headline="unsaved")])


def test_a_related_save_enqueues_its_dependents_after_the_commit(related_index, django_capture_on_commit_callbacks):
    ada = Author.objects.create(name="Ada")
    post = article("First", author=ada)
    drain(related_index)
    assert signals._dependent_indexes(Author) == [related_index]
    assert signals._dependent_indexes(Article.tags.through) == [related_index]
    assert signals._dependent_indexes(Tag) == [related_index]
    from demo_project.celery import app

    app.control.purge()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ada.name = "Ada Lovelace"
        ada.save()
        assert outbox.unqueued_ids(related_index) == [str(post.pk)]  # written by the trigger
    assert len(callbacks) == 1
    assert outbox.unqueued_ids(related_index) == []  # sent to the broker after the commit
    assert OutboxEntry.objects.get(object_id=str(post.pk)).enqueued_at is not None
    assert enqueue.drain()
    app.control.purge()

"""Synonyms the shop's staff edit in the admin, in the Solr / Elasticsearch synonyms file format.

One ``Synonym`` row is one line of that format:

- ``sneakers, trainers, running shoes``: equivalent (two-way). A query naming any of them searches for all;
- ``tee, tshirt => t-shirt``: a replacement (one-way). A query naming ``tee`` searches for ``t-shirt``
  instead, as Solr's and Elasticsearch's explicit mappings do; a query naming ``t-shirt`` is unchanged.

Terms are compared as index terms (the analyzer's stems), so "Trainer" and "trainers" are the same term and
a term may be several words. A row applies to one index (its label) or, left blank, to every index.

Searches read this process's copy of the enabled rows: its stamp (the rows' count and latest change) is
checked at most every ``SYNONYMS_REFRESH_SECONDS``, and the rows are read again only when it moved, so a
change saved in the admin reaches every web process within that time, without a reindex (the rules
apply to queries, never to the indexed text). Writers in this process forget the copy at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db.models import Count, Max

from catalog_search import conf, databases
from catalog_search.analysis import get_analyzer
from catalog_search.copies import ProcessCopy
from catalog_search.models import Synonym

MAX_TERMS = 100  # per line: a longer set is a pasted list, not a set of words meaning the same
MAX_TERM_LENGTH = 100  # characters
MAX_TERM_WORDS = 6  # as a query field's value: the longest phrase recognised in a query


@dataclass(frozen=True)
class Rule:
    """One parsed line: ``inputs`` (every term of an equivalent set) and, for a replacement, ``outputs``."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...] = ()

    @property
    def two_way(self) -> bool:
        return not self.outputs

    def line(self) -> str:
        left = ", ".join(_escaped(t) for t in self.inputs)
        return left if self.two_way else f"{left} => {', '.join(_escaped(t) for t in self.outputs)}"


def _escaped(term: str) -> str:
    return term.replace("\\", "\\\\").replace(",", "\\,")


def _split(text: str) -> list[str]:
    """Terms separated by commas, ``\\,`` a comma inside a term (the Solr format's escape)."""
    terms, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [" ".join(term.split()) for term in terms]


def parse_line(line: str) -> Rule:
    """The ``Rule`` of one line of the format; ``ValidationError`` saying what is wrong with it."""
    text = line.strip()
    if not text:
        raise ValidationError("The line is empty: write terms separated by commas, or 'from => to'.")
    if text.count("=>") > 1:
        raise ValidationError("A line has at most one '=>'.")
    left, _, right = text.partition("=>")
    inputs = _terms(left, "before '=>'" if right else "")
    outputs = _terms(right, "after '=>'") if "=>" in text else ()
    if not outputs and len(inputs) < 2:
        raise ValidationError("An equivalent set needs at least two terms ('sneakers, trainers').")
    if outputs and set(map(_key, inputs)) <= set(map(_key, outputs)):
        raise ValidationError("A replacement maps every term to itself: it would change nothing.")
    return Rule(inputs, outputs)


def _terms(text: str, where: str) -> tuple[str, ...]:
    side = f" {where}" if where else ""
    terms = _split(text)
    if any(not term for term in terms):
        raise ValidationError(f"Empty term{side}: remove the extra comma.")
    if len(terms) > MAX_TERMS:
        raise ValidationError(f"{len(terms)} terms{side}: at most {MAX_TERMS} per line.")
    for term in terms:
        if len(term) > MAX_TERM_LENGTH:
            raise ValidationError(f"The term {term[:30]!r}... is longer than {MAX_TERM_LENGTH} characters.")
        words = _key(term)
        if not words:
            raise ValidationError(f"The term {term!r} has no searchable word (only stop words or punctuation).")
        if len(words) > MAX_TERM_WORDS:
            raise ValidationError(f"The term {term!r} has more than {MAX_TERM_WORDS} words.")
    return tuple(dict.fromkeys(terms))


def _key(term: str) -> tuple[str, ...]:
    """A term as the index compares it: its analyzed terms."""
    return tuple(get_analyzer().terms(term))


def find_cycle(rules: Iterable[Rule]) -> list[str] | None:
    """A chain of replacements that leads back to its start ("a => b", "b => a"), as terms, or None.
    Searches apply one replacement per term (never a chain), so a cycle cannot loop; it is still refused,
    as it says two contradictory things."""
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    names: dict[tuple[str, ...], str] = {}
    for rule in rules:
        for source in rule.inputs:
            names.setdefault(_key(source), source)
            for target in rule.outputs:
                names.setdefault(_key(target), target)
                if _key(target) != _key(source):
                    edges.setdefault(_key(source), set()).add(_key(target))
    state: dict[tuple[str, ...], int] = {}  # 1: on the current path, 2: done

    def visit(node: tuple[str, ...], path: list[tuple[str, ...]]) -> list[tuple[str, ...]] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path, node, nxt][[*path, node].index(nxt) :]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start, [])):
            return [names[node] for node in cycle]
    return None


def validate(line: str, index: str, *, excluding: int | None = None) -> Rule:
    """``line`` parsed, and refused if it makes a cycle with the enabled rows that apply with it (the same
    index's and the global ones; ``excluding``: the row being edited)."""
    rule = parse_line(line)
    rows = Synonym.objects.filter(enabled=True).exclude(pk=excluding)
    if index:
        rows = rows.filter(index__in=["", index])
    cycle = find_cycle([*_parsed(rows.values_list("line", flat=True)), rule])
    if cycle:
        raise ValidationError(f"These replacements make a cycle: {' => '.join(cycle)}.")
    return rule


# The process's copy -----------------------------------------------------------------------------------


def _stamp() -> tuple:
    # On the running search's database (a standby's lag is the delay a change may take, like any row's).
    summary = databases.using(Synonym.objects).aggregate(n=Count("pk"), latest=Max("updated_at"))
    return summary["n"], summary["latest"]


def _read() -> dict[str, tuple[Rule, ...]]:
    """The enabled rules per index label ("" for every index)."""
    lines: dict[str, list[str]] = {}
    for index, line in (
        databases.using(Synonym.objects).filter(enabled=True).order_by("pk").values_list("index", "line")
    ):
        lines.setdefault(index, []).append(line)
    return {index: tuple(_parsed(own)) for index, own in lines.items()}


def _parsed(lines: Iterable[str]) -> list[Rule]:
    """The rules of ``lines``, leaving out any that no longer parse (saved before a check was added, or
    written around the admin): a bad row never fails a search or blocks saving another."""
    rules = []
    for line in lines:
        try:
            rules.append(parse_line(line))
        except ValidationError:
            continue
    return rules


_copy: ProcessCopy[dict[str, tuple[Rule, ...]]] = ProcessCopy(
    "synonyms", stamp=_stamp, read=_read, refresh=lambda: conf.settings().SYNONYMS_REFRESH_SECONDS, empty={}
)


def for_indexes(labels: Sequence[str]) -> tuple[int, tuple[Rule, ...]]:
    """(version, the rules that apply to a search of ``labels``): the global ones, then each index's."""
    rules = _copy.get()
    applying = [*rules.get("", ())]
    for label in labels:
        applying += rules.get(label, ())
    return _copy.version, tuple(applying)


def forget() -> None:
    """Drop this process's copy: the next search reads the table (writers in this process call it)."""
    _copy.forget()


# Import and export ------------------------------------------------------------------------------------


@dataclass
class Imported:
    """What ``import_lines`` did: rows created, lines already present, and the lines refused with why."""

    created: list[Synonym] = field(default_factory=list)
    present: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line number, line, message)


def import_lines(text: str, *, index: str = "") -> Imported:
    """Rows for the lines of a synonyms file (``#`` comments and blank lines skipped). Every line is
    checked first; nothing is written unless every line is valid (a file is fixed and imported again)."""
    done = Imported()
    existing = {_canonical(line) for line in Synonym.objects.filter(index=index).values_list("line", flat=True)}
    rules: list[Rule] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = "" if raw.lstrip().startswith("#") else raw.strip()
        if not line:
            continue
        try:
            rule = parse_line(line)
        except ValidationError as exc:
            done.errors.append((number, raw.strip(), " ".join(exc.messages)))
            continue
        if rule.line() in existing:
            done.present += 1
            continue
        existing.add(rule.line())
        rules.append(rule)
    if not done.errors:
        applying = (
            Synonym.objects.filter(enabled=True, index__in=["", index])
            if index
            else Synonym.objects.filter(enabled=True)
        )
        cycle = find_cycle([*_parsed(applying.values_list("line", flat=True)), *rules])
        if cycle:
            done.errors.append((0, "", f"These replacements make a cycle: {' => '.join(cycle)}."))
    if done.errors:
        return done
    done.created = Synonym.objects.bulk_create([Synonym(index=index, line=rule.line()) for rule in rules])
    forget()
    return done


def _canonical(line: str) -> str:
    try:
        return parse_line(line).line()
    except ValidationError:
        return line


def export_lines(rows: Iterable[Synonym]) -> str:
    """The rows as a synonyms file (one line each, disabled ones left out), Solr's and Elasticsearch's
    format; rows of one index say so in a comment above them."""
    out, scope = [], None
    for row in sorted(rows, key=lambda r: (r.index, r.pk)):
        if not row.enabled:
            continue
        if row.index != scope:
            out.append(f"# index: {row.index or 'all'}")
            scope = row.index
        out.append(_canonical(row.line))
    return "\n".join(out) + ("\n" if out else "")

"""What the analytics screen shows for a period: totals and latency, searches per day, top queries, queries
with no results, and queries with results that nobody clicked. Each is one SQL statement over the period's
rows (``created_at`` is indexed); a search counts as clicked when some interaction of kind "click" names it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db import connection

EVENTS = "catalog_search_searchevent"
INTERACTIONS = "catalog_search_searchinteraction"


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime  # excluded


@dataclass(frozen=True)
class QueryRow:
    query: str
    searches: int
    visitors: int
    avg_results: float
    clicked: int  # searches of it with at least one click

    @property
    def click_rate(self) -> float:
        return self.clicked / self.searches if self.searches else 0.0


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_CLICKED = f"EXISTS (SELECT 1 FROM {INTERACTIONS} i WHERE i.search_id = e.search_id AND i.kind = 'click')"


def summary(period: Period) -> dict[str, float | int | None]:
    """Searches, distinct visitors, the share with no results, the share clicked, took_ms p50 and p95."""
    row = _rows(
        f"SELECT count(*), count(DISTINCT nullif(e.visitor, '')), count(*) FILTER (WHERE e.results = 0), "
        f"count(*) FILTER (WHERE {_CLICKED}), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY e.took_ms), "
        "percentile_cont(0.95) WITHIN GROUP (ORDER BY e.took_ms) "
        f"FROM {EVENTS} e WHERE e.created_at >= %s AND e.created_at < %s",
        [period.since, period.until],
    )[0]
    searches = row[0]
    return {
        "searches": searches,
        "visitors": row[1],
        "no_results": row[2],
        "clicked": row[3],
        "no_result_rate": row[2] / searches if searches else None,
        "click_rate": row[3] / searches if searches else None,
        "p50_ms": row[4],
        "p95_ms": row[5],
    }


def per_day(period: Period) -> list[tuple[date, int]]:
    """Searches per day (in the site's TIME_ZONE), days without any included as 0."""
    zone = settings.TIME_ZONE if settings.USE_TZ else "UTC"
    return [
        (day, count)
        for day, count in _rows(
            "SELECT d::date, count(e.id) FROM generate_series("
            "  date_trunc('day', %(since)s AT TIME ZONE %(zone)s), "
            "  date_trunc('day', (%(until)s - interval '1 microsecond') AT TIME ZONE %(zone)s), interval '1 day') d "
            f"LEFT JOIN {EVENTS} e ON date_trunc('day', e.created_at AT TIME ZONE %(zone)s) = d "
            "  AND e.created_at >= %(since)s AND e.created_at < %(until)s "
            "GROUP BY d ORDER BY d",
            {"since": period.since, "until": period.until, "zone": zone},  # type: ignore[arg-type]
        )
    ]


def queries(period: Period, *, which: str = "top", limit: int = 20) -> list[QueryRow]:
    """The most searched queries of the period: all (``top``), those that found nothing (``no_results``),
    or those that found something and were never clicked (``no_clicks``). Photo searches have no words."""
    having = {
        "top": "",
        "no_results": "HAVING max(e.results) = 0",
        "no_clicks": f"HAVING min(e.results) > 0 AND NOT bool_or({_CLICKED})",
    }[which]
    rows = _rows(
        f"SELECT e.query, count(*), count(DISTINCT nullif(e.visitor, '')), avg(e.results), "
        f"count(*) FILTER (WHERE {_CLICKED}) "
        f"FROM {EVENTS} e WHERE e.created_at >= %s AND e.created_at < %s AND e.query <> '' "
        f"GROUP BY e.query {having} ORDER BY count(*) DESC, e.query LIMIT %s",
        [period.since, period.until, limit],
    )
    return [QueryRow(q, n, v, float(avg or 0), c) for q, n, v, avg, c in rows]


def queries_csv(rows: list[QueryRow]) -> str:
    """A query table as CSV (a spreadsheet opens it)."""
    return _csv(
        ["query", "searches", "visitors", "average results", "clicked searches", "click rate"],
        [[r.query, r.searches, r.visitors, f"{r.avg_results:.1f}", r.clicked, f"{r.click_rate:.3f}"] for r in rows],
    )


def days_csv(rows: list[tuple[date, int]]) -> str:
    return _csv(["day", "searches"], [[day.isoformat(), n] for day, n in rows])


def _csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return out.getvalue()


def _cell(value: object) -> object:
    """A shopper's query starting like a formula ("=HYPERLINK(...)") is quoted, so a spreadsheet shows it
    as text instead of running it (OWASP's CSV injection advice)."""
    return f"'{value}" if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value

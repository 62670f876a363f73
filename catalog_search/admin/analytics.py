"""The search analytics screen: for a chosen period, totals and latency, searches per day as a chart, the
top queries, queries with no results and queries with results but no clicks, each table as CSV.

It needs ``catalog_search.view_analytics``: seeing what shoppers search for is not editing synonyms or
rules. It lives at the changelist URL of ``SearchEvent`` and changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from catalog_search.admin.screens import Screen
from catalog_search.analytics import reports
from catalog_search.models import SearchEvent

PERMISSION = "catalog_search.view_analytics"
PERIODS = (1, 7, 30, 90)
CHART_HEIGHT = 120


def period_of(request: HttpRequest) -> tuple[reports.Period, str]:
    """The period asked for: ``since`` and ``until`` (dates, until included), else the last ``days`` days
    (7 by default); and a label for it."""
    try:
        since = date.fromisoformat(request.GET.get("since", ""))
        until = date.fromisoformat(request.GET.get("until", ""))
    except ValueError:
        since = until = None
    zone = timezone.get_current_timezone()
    if since and until and since <= until:
        start = datetime.combine(since, time.min, zone)
        return reports.Period(start, datetime.combine(until + timedelta(days=1), time.min, zone)), f"{since} to {until}"
    days = int(request.GET["days"]) if request.GET.get("days", "").isdigit() else 7
    days = days if days in PERIODS else 7
    end = datetime.combine(timezone.localdate() + timedelta(days=1), time.min, zone)
    return reports.Period(end - timedelta(days=days), end), f"the last {days} day{'s' if days > 1 else ''}"


@admin.register(SearchEvent)
class SearchAnalyticsAdmin(Screen):
    permission = PERMISSION

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        self.guard(request)
        period, label = period_of(request)
        tables = {which: reports.queries(period, which=which) for which in ("top", "no_results", "no_clicks")}
        days = reports.per_day(period)
        export = request.GET.get("export")
        if export in tables or export == "days":
            text = reports.days_csv(days) if export == "days" else reports.queries_csv(tables[export])
            response = HttpResponse(text, content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="search-{export}-{period.since:%Y%m%d}.csv"'
            return response
        context = {
            **self.admin_site.each_context(request),
            "title": "Search analytics",
            "opts": self.model._meta,
            "period": label,
            "periods": PERIODS,
            "summary": reports.summary(period),
            "tables": tables,
            "chart": _chart(days),
            "query_string": request.GET.urlencode(),
        }
        return TemplateResponse(request, "admin/catalog_search/analytics.html", context)


def _chart(days: list[tuple[date, int]]) -> dict:
    """Bars of searches per day for the template's SVG (no JavaScript library)."""
    top = max((n for _, n in days), default=0) or 1
    width = max(4, min(40, 720 // max(len(days), 1)))
    bars = [
        {
            "x": i * width,
            "y": CHART_HEIGHT - round(CHART_HEIGHT * n / top),
            "height": round(CHART_HEIGHT * n / top),
            "day": day,
            "count": n,
        }
        for i, (day, n) in enumerate(days)
    ]
    first, last = (days[0][0], days[-1][0]) if days else (None, None)
    return {
        "bars": bars,
        "bar_width": width - 2,
        "width": width * len(days),
        "height": CHART_HEIGHT,
        "top": top,
        "first": first,
        "last": last,
    }

"""The search page in headless Chromium (Playwright) against a live server: text search, a facet filter,
a photo search with a text refinement, the "Why?" disclosure, history, the error state and the page
without JavaScript. Saves the screenshots the README shows (docs/screenshots/).

Needs the Debian packages ``chromium`` and ``chromium-driver`` (scripts/test.sh installs them) and the
``playwright`` Python package; Playwright's own browser download is not used.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import random
import re
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw, ImageFilter

from catalog_search.encoding.encoders import get_encoder
from catalog_search.indexing.sync import reindex
from catalog_search.registry import get_index
from demo_project.shop.models import Product
from demo_project.urls import urlpatterns as demo_urlpatterns

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000

# The live server's URLs: the demo's (they serve media files too).
urlpatterns = [*demo_urlpatterns]

COLORS = {
    "red": (214, 48, 49),
    "blue": (45, 100, 214),
    "green": (46, 160, 90),
    "black": (40, 40, 46),
    "yellow": (240, 196, 40),
    "white": (246, 246, 246),
}
KINDS = [  # (kind, category, material, base price)
    ("tote", "bags", "leather", 49),
    ("backpack", "bags", "canvas", 64),
    ("sneakers", "shoes", "mesh", 89),
    ("boots", "shoes", "suede", 139),
    ("mug", "home", "ceramic", 14),
    ("lamp", "home", "metal", 79),
    ("t-shirt", "apparel", "cotton", 22),
    ("cap", "apparel", "wool", 19),
]
PRODUCT_TYPES = {"tote": "handbag", "cap": "baseball cap"}  # the demo's nouns; the other kinds are their own
BRANDS = ["Acme", "Northwind", "Umbra", "Kestrel"]


def draw_product(kind: str, rgb: tuple[int, int, int], size: int = 240, seed: int = 0) -> bytes:
    """A simple catalog-style picture of ``kind`` in ``rgb`` on a light studio background."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (244, 245, 247))
    d = ImageDraw.Draw(image)
    s = size / 240
    outline = tuple(max(0, c - 60) for c in rgb)
    d.ellipse((50 * s, 200 * s, 190 * s, 220 * s), fill=(226, 228, 232))  # floor shadow

    def poly(points: list[tuple[float, float]]) -> None:
        d.polygon([(x * s, y * s) for x, y in points], fill=rgb, outline=outline)

    if kind == "tote":
        d.arc((85 * s, 35 * s, 155 * s, 115 * s), 180, 360, fill=outline, width=int(8 * s))
        poly([(60, 80), (180, 80), (195, 205), (45, 205)])
    elif kind == "backpack":
        d.rounded_rectangle((70 * s, 45 * s, 170 * s, 205 * s), radius=int(35 * s), fill=rgb, outline=outline, width=3)
        d.rounded_rectangle((88 * s, 125 * s, 152 * s, 190 * s), radius=int(12 * s), outline=outline, width=3)
        d.arc((95 * s, 25 * s, 145 * s, 65 * s), 180, 360, fill=outline, width=int(6 * s))
    elif kind == "sneakers":
        poly([(30, 170), (45, 115), (95, 110), (150, 140), (205, 150), (212, 182), (30, 182)])
        d.rectangle((30 * s, 182 * s, 212 * s, 196 * s), fill=(250, 250, 250), outline=outline)
        for x in (70, 85, 100):
            d.line((x * s, 120 * s, (x + 10) * s, 140 * s), fill=(250, 250, 250), width=int(3 * s))
    elif kind == "boots":
        poly([(70, 40), (135, 40), (138, 140), (200, 160), (205, 192), (65, 192)])
        d.rectangle((65 * s, 192 * s, 205 * s, 204 * s), fill=outline)
    elif kind == "mug":
        d.ellipse((145 * s, 95 * s, 195 * s, 160 * s), outline=rgb, width=int(10 * s))
        d.rounded_rectangle((60 * s, 70 * s, 160 * s, 200 * s), radius=int(10 * s), fill=rgb, outline=outline, width=3)
    elif kind == "lamp":
        poly([(85, 40), (155, 40), (185, 110), (55, 110)])
        d.rectangle((115 * s, 110 * s, 125 * s, 190 * s), fill=outline)
        d.ellipse((80 * s, 185 * s, 160 * s, 205 * s), fill=outline)
    elif kind == "t-shirt":
        poly(
            [
                (85, 45),
                (155, 45),
                (205, 80),
                (185, 110),
                (165, 98),
                (165, 205),
                (75, 205),
                (75, 98),
                (55, 110),
                (35, 80),
            ]
        )
        d.arc((100 * s, 30 * s, 140 * s, 65 * s), 0, 180, fill=outline, width=int(4 * s))
    else:  # cap
        d.pieslice((55 * s, 70 * s, 185 * s, 200 * s), 180, 360, fill=rgb, outline=outline)
        d.ellipse((120 * s, 125 * s, 215 * s, 150 * s), fill=outline)
        d.ellipse((112 * s, 62 * s, 128 * s, 76 * s), fill=outline)
    jitter = rng.randint(-6, 6)
    image = image.rotate(jitter, fillcolor=(244, 245, 247), resample=Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@functools.cache
def held_out_photo() -> bytes:
    """A "customer photo" unlike the catalog art: a tote drawn differently, at an angle, on a wooden
    table with uneven light and sensor noise, as a JPEG."""
    width, height = 480, 360
    image = Image.new("RGB", (width, height))
    px = image.load()
    for y in range(height):
        for x in range(width):
            grain = 12 * math.sin(x / 9 + 3 * math.sin(y / 37))
            light = 1.15 - 0.5 * ((x - 320) ** 2 + (y - 60) ** 2) ** 0.5 / width
            px[x, y] = tuple(int(max(0, min(255, (c + grain) * light))) for c in (168, 122, 84))
    bag = Image.new("RGBA", (220, 240), (0, 0, 0, 0))
    d = ImageDraw.Draw(bag)
    d.arc((50, 0, 170, 120), 200, 340, fill=(120, 20, 30, 255), width=10)
    d.polygon([(25, 60), (195, 60), (215, 235), (5, 235)], fill=(190, 32, 44, 255))
    d.line((25, 92, 195, 92), fill=(140, 20, 30, 255), width=6)
    bag = bag.rotate(-14, expand=True, resample=Image.Resampling.BICUBIC)
    shadow = Image.new("RGBA", bag.size, (0, 0, 0, 0))
    shadow.putalpha(bag.getchannel("A").point(lambda a: a // 3))
    image.paste(shadow.filter(ImageFilter.GaussianBlur(8)), (150, 80), shadow.filter(ImageFilter.GaussianBlur(8)))
    image.paste(bag, (130, 55), bag)
    rng = random.Random(7)
    noise = Image.effect_noise((width, height), 18).convert("RGB")
    image = Image.blend(image, noise, 0.06 + rng.random() * 0.01)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture
def catalog(transactional_db) -> list[Product]:
    """48 products (8 kinds x 6 colors) with pictures, indexed synchronously."""
    products = []
    for k, (kind, category, material, base) in enumerate(KINDS):
        for c, (color, rgb) in enumerate(COLORS.items()):
            n = k * len(COLORS) + c
            product = Product(
                title=f"{color.capitalize()} {material} {kind}",
                description=f"A {color} {kind} made of {material}.",
                category=category,
                product_type=PRODUCT_TYPES.get(kind, kind),
                brand=BRANDS[n % len(BRANDS)],
                color=color,
                price=Decimal(base + 3 * c) + Decimal("0.99"),
                in_stock=n % 5 != 0,
            )
            product.image.save(f"browser-{n}.png", ContentFile(draw_product(kind, rgb, seed=n)), save=False)
            product.save()
            products.append(product)
    reindex(get_index(Product), get_encoder())
    return products


@pytest.fixture
def chromium(monkeypatch):
    """A headless Chromium page (1280 px wide); fails, never skips, when the browser is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            "Chromium is missing: install the Debian packages with "
            "`sudo apt-get update && sudo apt-get install -y chromium chromium-driver` "
            "(scripts/test.sh does it when run as root)."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: `pip install -e '.[test]'` (or `pip install playwright`).")
    # Playwright's sync API runs an event loop in this thread; Django would refuse ORM calls next to it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_for_search(page, action, path: str = "/api/search/"):
    """Run ``action`` and wait until the page has rendered the API's answer."""
    with page.expect_response(lambda r: r.url.split("?")[0].endswith(path), timeout=TIMEOUT_MS) as info:
        action()
    page.wait_for_selector("#loading", state="hidden", timeout=TIMEOUT_MS)
    return info.value


def cards(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#grid .card",
        """cards => cards.map(c => ({
            title: c.querySelector('.card-title').textContent,
            category: c.querySelector('.card-category').textContent,
            type: c.querySelector('.card-type') ? c.querySelector('.card-type').textContent : null,
            price: c.querySelector('.price').textContent,
            stock: c.querySelector('.stock').textContent,
            image: c.querySelector('img') ? c.querySelector('img').naturalWidth : 0,
        }))""",
    )


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function(
        "() => Array.from(document.images).every(i => i.hidden || (i.complete && i.naturalWidth > 0))",
        timeout=TIMEOUT_MS,
    )
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_search_page_in_chromium(catalog, chromium, live_server, settings):
    settings.ROOT_URLCONF = __name__
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Empty state: hints with example queries.
    page.goto(live_server.url + "/")
    assert page.is_visible("#hint") and page.is_hidden("#filters-panel")
    assert page.locator(".examples a").count() == 4

    # Text search without a reload: keyword matches rank first; the URL follows.
    page.fill("#q", "tote")
    wait_for_search(page, lambda: page.press("#q", "Enter"))
    found = cards(page)
    assert errors == [], errors
    assert len(found) == 24
    assert all("tote" in c["title"].lower() for c in found[:6]), [c["title"] for c in found[:6]]
    assert all(c["price"].startswith("$") and c["stock"] in ("In stock", "Out of stock") for c in found)
    # The cards render as soon as the API answers; their pictures arrive after. Wait until the first
    # six have finished (loaded or failed: `complete` is true for a broken image too), then check them.
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#grid .card img')).slice(0, 6).every(i => i.complete)",
        timeout=TIMEOUT_MS,
    )
    found = cards(page)
    assert all(c["image"] > 0 for c in found[:6]), "product pictures did not load"
    assert page.url.endswith("/?q=tote")
    assert "Results for “tote”" in page.inner_text("#results-heading")
    assert page.locator("#pager a[rel=next]").is_visible()
    # highlight=1: the query's word is marked in the titles (HTML the API escaped), the rest plain text.
    marked = page.eval_on_selector("#grid .card .card-title", "t => t.innerHTML")
    assert re.fullmatch(r"[^<>&]*<mark>[Tt]ote</mark>[^<>&]*", marked), marked
    shoot(page, "search-text.png")

    # A category facet: every card is in that category, the checkbox is checked, the URL has the filter.
    bags = page.locator('input[name="category"][value="bags"]')
    count = int(page.locator('[data-facet="category"] li', has=bags).locator(".facet-count").inner_text())
    assert count == 12
    wait_for_search(page, lambda: bags.check())
    filtered = cards(page)
    assert len(filtered) == 12 and {c["category"] for c in filtered} == {"bags"}
    assert all("tote" in c["title"].lower() for c in filtered[:6])
    assert page.is_checked('input[name="category"][value="bags"]')
    assert "category=bags" in page.url
    # Multi-select facets: the other categories stay listed (counted without the category filter).
    assert page.locator('[data-facet="category"] li').count() > 1
    assert page.locator('[data-facet="category"] input:checked').count() == 1

    # "Why?" shows each signal's score and rank.
    why = page.locator("#grid .card").first.locator("details.why")
    why.locator("summary").click()
    assert why.get_attribute("open") is not None
    table = why.inner_text()
    assert re.search(r"Keywords \(BM25\)\s+\d+\.\d{3}\s+1\b", table), table
    assert re.search(r"Vector \(image/text\)\s+-?\d+\.\d{3}\s+\d+", table), table
    fused = re.search(r"Fused \(rrf\): (\d\.\d{4}) = keywords (\d\.\d{4}) \+ vector (\d\.\d{4})", table)
    assert fused and "tote" in table, table
    assert float(fused[2]) + float(fused[3]) == pytest.approx(float(fused[1]), abs=2e-4)  # what each adds
    shoot(page, "search-filter.png")

    # Back to the unfiltered search (history), then forward again.
    wait_for_search(page, page.go_back)
    assert page.url.endswith("/?q=tote") and len({c["category"] for c in cards(page)}) > 1
    assert not page.is_checked('input[name="category"][value="bags"]')
    wait_for_search(page, page.go_forward)
    assert {c["category"] for c in cards(page)} == {"bags"}

    # Drag and drop a photo onto the drop zone: it is previewed.
    photo = held_out_photo()
    page.evaluate(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), ch => ch.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            const zone = document.getElementById("dropzone");
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        [base64.b64encode(photo).decode(), "dropped.jpg"],
    )
    assert page.is_visible("#photo-preview") and "dropped.jpg" in page.inner_text("#photo-name")

    # The file picker: a held-out-style photo refined by "red"; the sidebar's filter still applies.
    page.set_input_files("#photo", files=[{"name": "customer-photo.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    assert "customer-photo.jpg" in page.inner_text("#photo-name")
    page.wait_for_function("() => document.getElementById('photo-preview').naturalWidth > 0")
    page.fill("#refine", "red")
    response = wait_for_search(page, lambda: page.click("#photo-form button[type=submit]"), "/api/search/image/")
    assert response.status == 200 and response.request.method == "POST"
    answer = json.loads(response.body())
    assert answer["query"]["q"] == "red" and answer["query"]["filters"] == {"category": ["bags"]}
    results = answer["results"]
    assert results and all(r["scores"]["vector"] is not None for r in results)
    # The refinement is also a keyword query: whatever it matched is red.
    assert {r["fields"]["color"] for r in results if r["scores"]["bm25"] is not None} == {"red"}
    shown = cards(page)
    assert len(shown) == 12 and {c["category"] for c in shown} == {"bags"}
    assert [c["title"] for c in shown] == [r["fields"]["title"] for r in results[:24]]
    assert page.inner_text("#refinement") == "refined by “red”"
    assert page.inner_text("#results-heading").startswith("Photo search")
    why = page.locator("#grid .card").first.locator("details.why")
    why.locator("summary").click()
    assert re.search(r"Keywords \(BM25\)\s+(—\s+—|\d+\.\d{3}\s+\d+)", why.inner_text())
    assert re.search(r"Vector \(image/text\)\s+-?\d+\.\d{3}\s+\d+", why.inner_text())
    assert page.input_value("#q") == ""
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, "search-photo.png")

    # Filtering photo results re-runs the photo search with the same photo (kept in memory).
    wait_for_search(page, lambda: page.uncheck('input[name="category"][value="bags"]'), "/api/search/image/")
    assert len({c["category"] for c in cards(page)}) > 1 and page.inner_text("#refinement") == "refined by “red”"

    # Error state: the API's JSON error message is shown.
    text_api = re.compile(r"/api/search/\?")
    page.route(
        text_api,
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body=json.dumps({"error": {"code": "index_unavailable", "message": "The index is being rebuilt."}}),
        ),
    )
    page.fill("#q", "boots")
    wait_for_search(page, lambda: page.press("#q", "Enter"))
    assert page.is_visible("#error")
    assert "temporarily unavailable" in page.inner_text("#error") and "being rebuilt" in page.inner_text("#error")
    page.unroute(text_api)
    assert errors == [], errors
    context.close()


@pytest.mark.django_db(transaction=True)
def test_search_page_without_javascript(catalog, chromium, live_server, settings):
    settings.ROOT_URLCONF = __name__
    context = chromium.new_context(viewport=VIEWPORT, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(live_server.url + "/")
    page.fill("#q", "boots")
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**/?q=boots")
    assert all("boots" in c["title"].lower() for c in cards(page)[:6])

    page.check('input[name="category"][value="shoes"]')
    page.check('input[name="in_stock"]')
    page.click("#filters button[type=submit]")
    page.wait_for_url("**category=shoes**")
    shown = cards(page)
    assert shown and {c["category"] for c in shown} == {"shoes"} and {c["stock"] for c in shown} == {"In stock"}

    # A chip is a link to the same words without that part.
    page.goto(live_server.url + "/?q=red+tote+under+60")
    page.get_by_role("link", name="Remove Type: handbag").click()
    page.wait_for_url("**drop=product_type**")
    assert [" ".join(t.split()) for t in page.locator("#chips a.chip").all_inner_texts()] == [
        "Color: red ×",
        "Price ≤ 60 ×",
    ]
    assert page.input_value("#q") == "red tote under 60"

    # The sort menu and ticking two colors work without the script too (its "Sort" / "Apply" buttons).
    page.goto(live_server.url + "/?q=tote")
    page.select_option("#sort", "-price")
    page.click("#sort-menu button")
    page.wait_for_url("**sort=-price**")
    prices = [float(c["price"].lstrip("$")) for c in cards(page)]
    assert len(prices) == 24 and prices == sorted(prices, reverse=True)
    page.check('input[name="color"][value="red"]')
    page.check('input[name="color"][value="blue"]')
    page.click("#filters button[type=submit]")
    page.wait_for_url("**color=blue**")
    assert set(card_colors(page)) == {"red", "blue"} and "sort=-price" in page.url
    assert page.locator('[data-facet="color"] li').count() == 6

    page.goto(live_server.url + "/?q=tote")
    page.click("#pager a[rel=next]")
    page.wait_for_url("**page=2**")
    assert len(cards(page)) == 24 and page.inner_text(".pager-page") == "Page 2"

    # The photo form posts the photo (multipart, CSRF token) and renders the results on the server.
    page.set_input_files("#photo", files=[{"name": "c.jpg", "mimeType": "image/jpeg", "buffer": held_out_photo()}])
    page.fill("#refine", "in red")
    page.click("#photo-form button[type=submit]")
    page.wait_for_load_state()
    assert "refined by “in red”" in page.inner_text("#results-heading")
    assert len(cards(page)) == 24
    context.close()


def card_colors(page) -> list[str]:
    return page.eval_on_selector_all("#grid .card .card-color", "spans => spans.map(s => s.textContent)")


def facet_counts(page, name: str) -> dict[str, int]:
    return page.eval_on_selector_all(
        f'[data-facet="{name}"] li',
        """items => Object.fromEntries(items.map(li => [
            li.querySelector('input').value, Number(li.querySelector('.facet-count').textContent)]))""",
    )


@pytest.mark.django_db(transaction=True)
def test_sort_menu_and_multi_select_colors_in_chromium(catalog, chromium, live_server, settings):
    """The sort menu reorders by price through the API; ticking two colors shows both, and the other
    colors keep their counts (counted without the color filter)."""
    settings.ROOT_URLCONF = __name__
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server.url + "/")
    page.fill("#q", "tote")
    wait_for_search(page, lambda: page.press("#q", "Enter"))
    assert page.input_value("#sort") == "relevance" and page.is_visible("#sort-menu")
    assert page.inner_text("#total") == "48 results"  # the tiny catalog: every product is a vector candidate
    relevance = [c["title"] for c in cards(page)]
    response = wait_for_search(page, lambda: page.select_option("#sort", "price"))
    assert "sort=price" in response.url and "sort=price" in page.url
    prices = [float(c["price"].lstrip("$")) for c in cards(page)]
    assert len(prices) == 24 and prices == sorted(prices) and [c["title"] for c in cards(page)] != relevance
    assert prices[0] == min(float(p.price) for p in catalog)
    colors = facet_counts(page, "color")
    assert len(colors) == 6
    wait_for_search(page, lambda: page.check('input[name="color"][value="red"]'))
    wait_for_search(page, lambda: page.check('input[name="color"][value="blue"]'))
    assert set(card_colors(page)) == {"red", "blue"}
    assert facet_counts(page, "color") == colors  # every color listed, with the same counts
    assert page.locator('[data-facet="color"] input:checked').count() == 2
    prices = [float(c["price"].lstrip("$")) for c in cards(page)]
    assert prices == sorted(prices) and page.input_value("#sort") == "price"
    assert page.inner_text("#total") == f"{colors['red'] + colors['blue']} results"
    assert "color=red" in page.url and "color=blue" in page.url
    # Back: the single color, still sorted by price.
    wait_for_search(page, page.go_back)
    assert set(card_colors(page)) == {"red"} and page.input_value("#sort") == "price"
    assert errors == [], errors
    context.close()


@pytest.mark.django_db(transaction=True)
def test_more_like_this_in_chromium(catalog, chromium, live_server, settings):
    """A card's "More like this" lists the product's nearest others as the API does; the sidebar's filters
    narrow them (the page stays "More like"), and Back returns to the search."""
    settings.ROOT_URLCONF = __name__
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server.url + "/?q=tote")
    first, pk = cards(page)[0]["title"], page.get_attribute("#grid .card >> nth=0", "data-id")
    api = f"/api/similar/shop.product/{pk}/"

    def similar(**filters) -> list[str]:  # over HTTP: an ORM call here would open a connection in Playwright's loop
        with urllib.request.urlopen(f"{live_server.url}{api}?{urlencode({'k': 24, **filters})}") as response:
            return [hit["fields"]["title"] for hit in json.load(response)["results"]]

    wait_for_search(page, lambda: page.click("#grid .card >> nth=0 >> a.more-like"), api)
    assert page.inner_text("#results-heading") == f"More like “{first}”"
    expected = similar()
    assert [c["title"] for c in cards(page)] == expected and first not in expected and len(expected) == 24
    assert f"similar={pk}" in page.url and not page.is_visible("#sort-menu")
    wait_for_search(page, lambda: page.check('input[name="color"][value="blue"]'), api)
    blue = similar(color="blue")
    assert [c["title"] for c in cards(page)] == blue and set(card_colors(page)) == {"blue"}
    assert page.inner_text("#results-heading") == f"More like “{first}”" and "color=blue" in page.url
    shoot(page, "more-like-this.png")
    wait_for_search(page, page.go_back, api)
    assert [c["title"] for c in cards(page)] == expected
    wait_for_search(page, page.go_back)
    assert page.inner_text("#results-heading") == "Results for “tote”"
    assert errors == [], errors
    context.close()


def chip_labels(page) -> list[str]:
    """The visible chips' accessible names ("Remove Type: handbag"); [] when the line is hidden."""
    if page.is_hidden("#understood"):
        return []
    return page.eval_on_selector_all("#chips a.chip", "links => links.map(a => a.getAttribute('aria-label'))")


@pytest.mark.django_db(transaction=True)
def test_understood_chips_in_chromium(catalog, chromium, live_server, settings):
    settings.ROOT_URLCONF = __name__
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server.url + "/")

    # "tote" is a handbag, "red" a color, "under 60" a price bound: three chips, the handbags first.
    page.fill("#q", "red tote under 60")
    wait_for_search(page, lambda: page.press("#q", "Enter"))
    assert chip_labels(page) == ["Remove Color: red", "Remove Type: handbag", "Remove Price ≤ 60"]
    chip = page.get_by_role("link", name="Remove Type: handbag")
    assert " ".join(chip.inner_text().split()) == "Type: handbag ×"
    assert chip.get_attribute("title") == "from “tote” · ranks matching products first"
    price = page.get_by_role("link", name="Remove Price ≤ 60")
    assert price.get_attribute("title") == "from “under 60” · shows only matching products"
    found = cards(page)
    assert found[0]["title"] == "Red leather tote" and found[0]["type"] == "handbag"
    assert {c["type"] for c in found[:4]} == {"handbag"}  # the four totes under $60
    assert all(Decimal(c["price"].lstrip("$")) <= 60 for c in found)
    assert page.locator('[data-facet="product_type"] input[value="handbag"]').count() == 1  # the Type facet

    # Remove the Type chip from the keyboard: the same words are searched without it, and it is gone.
    chip.focus()
    response = wait_for_search(page, lambda: page.keyboard.press("Enter"))
    assert "drop=product_type" in response.url and "q=red+tote+under+60" in response.url
    assert "product_type" not in json.loads(response.body())["query"]["understood"]
    assert chip_labels(page) == ["Remove Color: red", "Remove Price ≤ 60"]
    assert page.input_value("#q") == "red tote under 60"
    assert "drop=product_type" in page.url
    found = cards(page)
    assert {c["title"] for c in found[:4]} == {
        "Red leather tote",
        "Red ceramic mug",
        "Red cotton t-shirt",
        "Red wool cap",
    }
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Remove Color: red"  # focus stays

    # Back: the search with every part understood again; forward: without the type.
    wait_for_search(page, page.go_back)
    assert len(chip_labels(page)) == 3 and page.input_value('#filters input[name="drop"]') == ""
    wait_for_search(page, page.go_forward)
    assert chip_labels(page) == ["Remove Color: red", "Remove Price ≤ 60"]

    # A chip of the server-rendered page re-runs the search through the API as well.
    page.goto(live_server.url + "/?q=red+tote+under+60")
    assert len(chip_labels(page)) == 3
    wait_for_search(page, lambda: page.get_by_role("link", name="Remove Price ≤ 60").click())
    assert chip_labels(page) == ["Remove Color: red", "Remove Type: handbag"]
    assert any(Decimal(c["price"].lstrip("$")) > 60 for c in cards(page))

    # A misspelt word is corrected, and says so; the words as typed are one click away.
    page.fill("#q", "red snekers")
    wait_for_search(page, lambda: page.press("#q", "Enter"))
    assert (
        page.inner_text("#corrected")
        == "Showing results for sneakers (you typed snekers). Search for “red snekers” instead"
    )
    assert page.inner_text("#corrected strong") == "sneakers"
    assert cards(page)[0]["title"] == "Red mesh sneakers"
    assert chip_labels(page) == ["Remove Color: red", "Remove Type: sneakers"]  # a new query: nothing dropped
    response = wait_for_search(page, lambda: page.get_by_role("link", name="Search for “red snekers” instead").click())
    assert "drop=spelling" in response.url
    assert page.is_hidden("#corrected") and page.input_value("#q") == "red snekers"
    assert "corrected" not in json.loads(response.body())["query"]

    # The words typed are text, never markup.
    page.fill("#q", '<img src=x onerror="window.pwned = 1"> snekers')
    wait_for_search(page, lambda: page.press("#q", "Enter"))
    assert page.locator("#corrected img, #chips img, #results-heading img").count() == 0
    assert '“<img src=x onerror="window.pwned = 1"> snekers”' in page.inner_text("#corrected")
    assert page.evaluate("window.pwned") is None
    assert errors == [], errors
    context.close()


@pytest.mark.django_db(transaction=True)
def test_suggestions_dropdown_in_chromium(catalog, chromium, live_server, settings):
    """Typing opens a combobox of completions and products (one debounced request), the arrows move through
    it, Enter searches the active completion, Escape closes it, a click on a product opens that product."""
    settings.ROOT_URLCONF = __name__
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/suggest/" in r.url else None)
    page.goto(live_server.url + "/")
    box = page.locator("#q")
    assert box.get_attribute("role") == "combobox" and box.get_attribute("aria-expanded") == "false"
    assert box.get_attribute("aria-controls") == "suggestions"

    with page.expect_response(lambda r: "/api/suggest/" in r.url):
        box.press_sequentially("sne", delay=20)  # faster than the debounce: one request
    page.wait_for_selector("#suggestions:not([hidden])")
    assert len(asked) == 1 and "q=sne" in asked[0], asked
    assert box.get_attribute("aria-expanded") == "true"
    completions = page.locator("#suggestions .suggest-completion .suggest-text").all_text_contents()
    assert completions[0] == "sneakers", completions
    products = page.locator("#suggestions .suggest-product .suggest-title").all_text_contents()
    assert products and all("sneakers" in t.lower() for t in products), products
    assert page.locator("#suggestions [role=option]").count() == len(completions) + len(products)

    box.press("ArrowDown")
    first = page.locator("#suggestions [role=option]").first
    assert box.get_attribute("aria-activedescendant") == first.get_attribute("id")
    assert first.get_attribute("aria-selected") == "true"
    box.press("ArrowDown")
    box.press("ArrowUp")
    assert box.get_attribute("aria-activedescendant") == first.get_attribute("id")
    wait_for_search(page, lambda: box.press("Enter"))
    assert box.input_value() == "sneakers"
    assert page.is_hidden("#suggestions") and box.get_attribute("aria-expanded") == "false"
    assert all("sneakers" in c["title"].lower() for c in cards(page)[:6])

    box.fill("")
    with page.expect_response(lambda r: "/api/suggest/" in r.url):
        box.press_sequentially("red s")
    page.wait_for_selector("#suggestions:not([hidden])")
    texts = page.locator("#suggestions .suggest-completion .suggest-text").all_text_contents()
    assert texts and all(t.startswith("red s") for t in texts), texts
    box.press("Escape")
    assert page.is_hidden("#suggestions") and box.input_value() == "red s"
    assert box.get_attribute("aria-activedescendant") is None

    box.fill("")
    with page.expect_response(lambda r: "/api/suggest/" in r.url) as info:
        box.press_sequentially("backp")
    product = info.value.json()["products"][0]
    page.wait_for_selector("#suggestions .suggest-product")
    with page.expect_navigation():
        page.locator("#suggestions .suggest-product").first.click()
    assert page.url.endswith(product["image_url"])  # the demo has no product page: the product's picture
    assert errors == [], errors


def admin_login(page, live_server, next_path: str) -> None:
    """Sign in as ``staff_user`` through the admin's login form, landing on ``next_path``."""
    page.goto(f"{live_server.url}/admin/login/?next={next_path}")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "demo-password")
    page.click("input[type=submit]")


@pytest.fixture
def staff_user(transactional_db) -> None:
    """Made before the browser starts: an ORM call next to Playwright's event loop leaks its connection."""
    from django.contrib.auth.models import User

    User.objects.create_superuser("staff", "staff@example.com", "demo-password")


@pytest.mark.django_db(transaction=True)
def test_synonyms_admin_in_chromium(catalog, staff_user, chromium, live_server, settings):
    """Staff add a synonym in the admin (a bad line first: the form says why), and the search page's next
    search for the staff's word finds the products; the changelist is the screenshot docs/staff.md shows."""
    settings.ROOT_URLCONF = __name__
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    admin_login(page, live_server, "/admin/catalog_search/synonym/add/")
    page.fill("#id_line", "carryall, , tote")
    page.click("input[name=_save]")
    assert "Empty term: remove the extra comma." in page.inner_text(".errorlist")
    page.fill("#id_line", "carryall,holdall, tote")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    assert "carryall, holdall, tote" in page.inner_text("#result_list")
    page.goto(live_server.url + "/admin/catalog_search/synonym/import/")
    page.fill("#id_text", "kicks, sneakers\nfooty => football\n")
    page.click("input[value=Import]")
    page.wait_for_selector("#result_list")
    assert "Imported 2 synonyms" in page.inner_text(".messagelist")
    shoot(page, "admin-synonyms.png")

    page.goto(live_server.url + "/")
    page.fill("#q", "carryall")
    response = wait_for_search(page, lambda: page.press("#q", "Enter"))
    assert json.loads(response.body())["query"]["synonyms"] == {"carryall": ["holdall", "tote"]}
    assert all(c["title"].endswith("tote") for c in cards(page)[:6])


@pytest.mark.django_db(transaction=True)
def test_query_rule_admin_in_chromium(catalog, staff_user, chromium, live_server, settings):
    """Staff pin a product for a query and boost a brand in the admin; the page's next search shows the pin
    first and the brand next; the rule's form is the screenshot docs/staff.md shows."""
    settings.ROOT_URLCONF = __name__
    pinned = next(p for p in catalog if p.title == "Green canvas backpack")
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    admin_login(page, live_server, "/admin/catalog_search/queryrule/add/")
    page.fill("#id_name", "Totes: the green backpack first")
    page.select_option("#id_match", "contains")
    page.fill("#id_query", "tote")
    page.fill("#id_boost_filter", "color=blue")
    page.fill("#id_boost_factor", "5")
    page.select_option("#id_products-0-action", "pin")
    page.fill("#id_products-0-object_id", "999999")  # no such product: the form says so
    page.fill("#id_products-0-position", "1")
    page.click("input[name=_continue]")
    assert "No product '999999'" in page.inner_text(".inline-related")
    page.fill("#id_products-0-object_id", str(pinned.pk))
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    shoot(page, "admin-query-rule.png")

    page.goto(live_server.url + "/")
    page.fill("#q", "leather tote")
    response = wait_for_search(page, lambda: page.press("#q", "Enter"))
    assert json.loads(response.body())["query"]["rules"][0]["name"] == "Totes: the green backpack first"
    found = cards(page)
    assert found[0]["title"] == "Green canvas backpack"
    assert found[1]["title"] == "Blue leather tote"  # the boosted color, then the other leather totes


@pytest.mark.django_db(transaction=True)
def test_analytics_admin_in_chromium(catalog, staff_user, chromium, live_server, settings):
    """Searches on the page, a click on a result and an add to cart reach the analytics screen (written by
    the writer thread); the screen is the screenshot docs/staff.md shows."""
    settings.ROOT_URLCONF = __name__
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "ANALYTICS_FLUSH_SECONDS": 0.3}
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(live_server.url + "/")
    for q in ["tote", "blue backpack", "tote", "zzzqx"]:
        page.fill("#q", q)
        wait_for_search(page, lambda: page.press("#q", "Enter"))
    page.fill("#q", "tote")
    wait_for_search(page, lambda: page.press("#q", "Enter"))
    with page.expect_response(lambda r: r.url.endswith("/api/events/")) as clicked:
        page.click("#grid .card:nth-child(2) .card-title")
    assert clicked.value.status == 202
    with page.expect_response(lambda r: r.url.endswith("/api/events/")) as added:
        page.click("#grid .card:nth-child(2) .add-to-cart")
    assert added.value.status == 202 and page.inner_text("#grid .card:nth-child(2) .add-to-cart") == "Added ✓"

    admin_login(page, live_server, "/admin/catalog_search/searchevent/")
    for _ in range(50):  # the writer thread writes within 0.3 s
        if page.inner_text("#cs-searches") == "5" and page.inner_text("#cs-clicked") == "1":
            break
        page.wait_for_timeout(200)
        page.reload()
    assert (page.inner_text("#cs-searches"), page.inner_text("#cs-clicked")) == ("5", "1")
    assert page.inner_text("#cs-visitors") == "1"  # one browser: its id from localStorage on every request
    assert page.inner_text("#cs-no-results") == "0"  # hybrid: the vector signal answers "zzzqx" too
    assert page.inner_text("#cs-top tbody tr:first-child td:first-child") == "tote"
    unclicked = page.inner_text("#cs-no_clicks")
    assert "blue backpack" in unclicked and "zzzqx" in unclicked and "tote" not in unclicked
    shoot(page, "admin-analytics.png")
    from catalog_search.analytics import record

    for _ in range(50):  # an interval without searches: the writer ends, closing its connection
        if not record.searches._thread and not record.interactions._thread:
            break
        page.wait_for_timeout(100)
    assert not record.searches._thread and not record.interactions._thread

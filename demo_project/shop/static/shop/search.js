/* Progressive enhancement of the search page (the page works without it).
 *
 * - photo: file picker, drag-and-drop and paste, with a preview; searched through POST /api/search/image/
 *   (photo + optional text refinement + the sidebar's filters), the file kept in memory for re-filtering
 * - text: searched through GET /api/search/ without a reload; the URL follows (history API)
 * - filters, price buckets and pagination re-run the current search; loading and error states
 * - the sort menu (a field of the filters form) re-runs the search in its order; the total shows above
 * - what the engine understood shows as chips; removing one (or "Search for … instead" after a typo
 *   correction) re-runs the search with that part in `drop`, the words unchanged
 * - "More like this" on a card lists the products nearest it (GET /api/similar/…/<id>/), the sidebar's
 *   filters narrowing them; its URL is the page's own (?similar=<id>), so it also works in a new tab
 * Results are built from <template> elements of the page with textContent only (no HTML injection), but
 * for the title's highlight (highlight=1): HTML the API escaped, its only tags the <mark>s of query words.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  const API_TEXT = script.dataset.apiText;
  const API_IMAGE = script.dataset.apiImage;
  const API_SIMILAR = script.dataset.apiSimilar; // ends in /0/: the product id goes there
  const API_EVENTS = script.dataset.apiEvents;
  const PER_PAGE = Number(script.dataset.perPage) || 24;
  const MAX_BYTES = (Number(script.dataset.maxMb) || 10) * 1024 * 1024;
  const MAX_OFFSET = 1000;
  const FACETS = ["category", "product_type", "brand", "color"];
  // As views.py labels them: product_type is "Type", other understood fields are title-cased.
  const FIELD_LABELS = { product_type: "Type" };
  const BOUND_SIGNS = { gte: "≥", lte: "≤", gt: ">", lt: "<" };
  const APPLIED = { boost: "ranks matching products first", filter: "shows only matching products" };
  const UNAVAILABLE = "Search is temporarily unavailable. Please try again in a moment.";

  const byId = (id) => document.getElementById(id);
  const els = {
    searchForm: byId("search-form"),
    q: byId("q"),
    photoForm: byId("photo-form"),
    photoInput: byId("photo"),
    dropzone: byId("dropzone"),
    preview: byId("photo-preview"),
    photoName: byId("photo-name"),
    refine: byId("refine"),
    filters: byId("filters"),
    filtersPanel: byId("filters-panel"),
    main: byId("main"),
    heading: byId("results-heading"),
    status: byId("status"),
    loading: byId("loading"),
    error: byId("error"),
    warnings: byId("warnings"),
    expanded: byId("expanded"),
    corrected: byId("corrected"),
    understood: byId("understood"),
    chips: byId("chips"),
    hint: byId("hint"),
    empty: byId("empty"),
    grid: byId("grid"),
    pager: byId("pager"),
    cardTemplate: byId("card-template"),
    facetTemplate: byId("facet-template"),
    sortMenu: byId("sort-menu"),
    sort: byId("sort"),
    total: byId("total"),
  };

  let mode = "text"; // "text", "photo" or "similar": what filters and pagination re-run
  let similarTo = null; // "More like this": { id, title } of the product
  let photoFile = null; // the chosen photo, kept in memory only
  let previewUrl = null;
  let controller = null; // the request in flight; a new search aborts it

  // ---- parameters --------------------------------------------------------------------------------

  /** The sidebar's filters as API parameters (empty fields left out). */
  function filterParams() {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(els.filters)) {
      if (key === "sort" && value === "relevance") continue; // the default: kept out of URLs
      if (key === "q" || key === "similar") continue;
      if (typeof value === "string" && value.trim()) params.append(key, value.trim());
    }
    return params;
  }

  /** Page URL parameters of a text search: q, filters, page. */
  function textParams(q, page) {
    const params = new URLSearchParams({ q });
    for (const [key, value] of filterParams()) params.append(key, value);
    if (page > 1) params.set("page", String(page));
    return params;
  }

  function currentQuery() {
    return els.filters.elements.q.value.trim();
  }

  function pageOf(params) {
    const page = parseInt(params.get("page") || "1", 10);
    return Number.isFinite(page) && page > 0 ? page : 1;
  }

  /** A `drop` value as a list of names (comma-separated, repeats and blanks left out). */
  function dropList(value) {
    return [...new Set(value.split(",").map((name) => name.trim()).filter(Boolean))];
  }

  /** The drop input with ``name`` added: the current search without that understood part. */
  function dropping(name) {
    return [...new Set([...dropList(els.filters.elements.drop.value), name])].join(",");
  }

  function resetFilters() {
    for (const input of els.filters.querySelectorAll("input")) {
      if (input.type === "checkbox") input.checked = false;
      else if (input.name !== "q") input.value = "";
    }
    resetSort();
  }

  // ---- searching ---------------------------------------------------------------------------------

  async function runText(params, { push = true } = {}) {
    const q = (params.get("q") || "").trim();
    if (!q) {
      if (push) history.pushState({}, "", "/");
      showHint();
      return;
    }
    const page = pageOf(params);
    const pageUrl = "/?" + params.toString();
    if (push && pageUrl !== location.pathname + location.search) history.pushState({}, "", pageUrl);
    const api = new URLSearchParams(params);
    api.delete("page");
    api.set("k", String(PER_PAGE + 1)); // one extra tells whether there is a next page
    api.set("offset", String((page - 1) * PER_PAGE));
    api.set("explain", "1");
    api.set("highlight", "1");
    const data = await request(API_TEXT + "?" + api.toString(), { method: "GET" });
    if (!data) return;
    if (push && page === 1 && data.query && data.query.redirect) {
      location.assign(data.query.redirect); // a query rule sends this query to a page of its own
      return;
    }
    mode = "text";
    els.filters.elements.similar.value = "";
    els.q.value = q;
    els.filters.elements.q.value = q;
    render(data, { page, params, title: `Results for “${q}”` });
  }

  async function runPhoto(page = 1, { push = true } = {}) {
    if (!photoFile) {
      showError("Choose a photo to search with.");
      return;
    }
    const refine = els.refine.value.trim();
    const body = new FormData();
    body.append("image", photoFile, photoFile.name || "photo");
    if (refine) body.append("q", refine);
    const filters = filterParams();
    for (const [key, value] of filters) body.append(key, value);
    body.append("k", String(PER_PAGE + 1));
    body.append("offset", String((page - 1) * PER_PAGE));
    body.append("explain", "1");
    body.append("highlight", "1");
    if (push && !(history.state && history.state.photo)) history.pushState({ photo: true }, "", "/");
    const data = await request(API_IMAGE, { method: "POST", body });
    if (!data) return;
    mode = "photo";
    els.filters.elements.similar.value = "";
    els.q.value = ""; // the text box is for text searches; the refinement shows in the heading
    els.filters.elements.q.value = refine;
    render(data, { page, params: filters, title: "Photo search", refine });
  }

  /** "More like this": the products nearest product ``id``, under the sidebar's filters. */
  async function runSimilar(id, page = 1, { push = true, title = null } = {}) {
    const filters = filterParams();
    const params = new URLSearchParams({ similar: String(id) });
    for (const [key, value] of filters) params.append(key, value);
    if (page > 1) params.set("page", String(page));
    const pageUrl = "/?" + params.toString();
    if (push && pageUrl !== location.pathname + location.search) history.pushState({}, "", pageUrl);
    const api = new URLSearchParams(filters);
    api.set("k", String(PER_PAGE + 1));
    api.set("offset", String((page - 1) * PER_PAGE));
    const data = await request(API_SIMILAR.replace(/0\/$/, `${encodeURIComponent(id)}/`) + "?" + api, { method: "GET" });
    if (!data) return;
    mode = "similar";
    similarTo = { id: String(id), title: title ?? (similarTo && similarTo.id === String(id) ? similarTo.title : null) };
    els.q.value = "";
    els.filters.elements.q.value = "";
    els.filters.elements.drop.value = "";
    els.filters.elements.similar.value = String(id);
    const heading = similarTo.title ? `More like “${similarTo.title}”` : "More like this";
    render(data, { page, params, title: heading });
  }

  function rerun(page = 1) {
    if (mode === "photo" && photoFile) return runPhoto(page);
    if (mode === "similar" && similarTo) return runSimilar(similarTo.id, page);
    return runText(textParams(currentQuery(), page));
  }

  /** This browser's anonymous id for search analytics (no account, no IP address): kept in localStorage. */
  function visitorId() {
    try {
      let id = localStorage.getItem("catalog-search-visitor");
      if (!id) {
        id = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + String(Date.now());
        localStorage.setItem("catalog-search-visitor", id);
      }
      return id;
    } catch {
      return ""; // storage blocked: searches are recorded without an id
    }
  }

  let lastSearchId = null; // the search_id of the results shown: clicks and adds to cart name it

  /** Tell search analytics about a click or an add to cart on a result; never in the shopper's way. */
  function sendEvent(event, id, position) {
    if (!lastSearchId || !API_EVENTS) return;
    const body = JSON.stringify({ search_id: lastSearchId, event, type: "shop.product", id: String(id), position });
    fetch(API_EVENTS, {
      method: "POST",
      body,
      keepalive: true, // survives the page navigating away
      headers: { "Content-Type": "application/json", "X-Search-Visitor": visitorId() },
    }).catch(() => {});
  }

  /** fetch JSON; on failure show the API's error message and return null. */
  async function request(url, options) {
    if (controller) controller.abort();
    const mine = new AbortController();
    controller = mine;
    setLoading(true);
    try {
      const headers = { Accept: "application/json", "X-Search-Visitor": visitorId() };
      const response = await fetch(url, { ...options, signal: mine.signal, headers });
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      if (!response.ok || !body || body.error) {
        const message = body && body.error && body.error.message;
        if (response.status === 503) showError(UNAVAILABLE, message || "");
        else showError(message || `The search failed (HTTP ${response.status}). Please try again.`);
        return null;
      }
      lastSearchId = body.search_id || null;
      return body;
    } catch (err) {
      if (err.name !== "AbortError") showError("Could not reach the shop. Check your connection and try again.");
      return null;
    } finally {
      if (controller === mine) {
        controller = null;
        setLoading(false);
      }
    }
  }

  // ---- rendering ---------------------------------------------------------------------------------

  function setLoading(on) {
    els.loading.hidden = !on;
    els.main.setAttribute("aria-busy", on ? "true" : "false");
    document.body.classList.toggle("is-loading", on);
  }

  function showError(message, detail = "") {
    els.error.hidden = false;
    els.error.replaceChildren(paragraph("alert-title", message), paragraph("alert-detail", detail));
  }

  function showHint() {
    mode = "text";
    els.q.value = "";
    els.filters.elements.q.value = "";
    setHeading("Find anything in the shop");
    els.status.textContent = "";
    const lines = [els.error, els.warnings, els.expanded, els.corrected, els.understood, els.empty, els.pager];
    for (const el of [...lines, els.filtersPanel, els.sortMenu, els.total]) el.hidden = true;
    els.grid.replaceChildren();
    els.hint.hidden = false;
  }

  function render(data, { page, params, title, refine = "" }) {
    const results = data.results || [];
    const hits = results.slice(0, PER_PAGE);
    const offset = (page - 1) * PER_PAGE;
    els.error.hidden = true;
    els.hint.hidden = true;
    els.filtersPanel.hidden = false;
    setHeading(title, refine);
    els.status.textContent = hits.length
      ? `Showing ${offset + 1}–${offset + hits.length} · ${Math.round(data.took_ms || 0)} ms`
      : "No results";
    // Query expansion: words no product uses, and the catalog words searched for them.
    const expanded = Object.entries((data.query && data.query.expanded) || {});
    els.expanded.hidden = !expanded.length;
    els.expanded.textContent = expanded.length
      ? `Also searched: ${expanded.map(([word, added]) => `“${word}” → ${added.join(", ")}`).join("; ")}`
      : "";
    renderCorrection(data.query || {}, params);
    renderChips((data.query && data.query.understanding) || [], params);
    const warnings = data.warnings || [];
    els.warnings.hidden = !warnings.length;
    els.warnings.replaceChildren(...warnings.map((w) => paragraph("", w)));
    const query = data.query || {};
    const fusion = (query.fusion || "rrf") + (query.alpha != null ? `, alpha ${query.alpha}` : "");
    els.grid.replaceChildren(...hits.map((hit) => card(hit, fusion)));
    els.empty.hidden = hits.length > 0;
    const emptyTitle = els.empty.querySelector("h2");
    const empties = { photo: "No products match this photo", similar: "No similar products match these filters" };
    if (emptyTitle) emptyTitle.textContent = empties[mode] || `No products match “${currentQuery()}”`;
    renderFacets(data.facets || {}, params);
    renderSort(data.query || {}, data.total);
    renderPager(page, results.length > PER_PAGE && offset + PER_PAGE <= MAX_OFFSET, params);
  }

  /** Where a link leaving ``name`` out goes: the page URL for a text search (it works in a new tab). */
  function dropHref(params, name) {
    if (mode !== "text") return "#main"; // a photo cannot be put in a URL: the click re-runs it
    const link = new URLSearchParams(params);
    const dropped = dropList(link.getAll("drop").join(","));
    link.delete("drop");
    link.delete("page");
    link.set("drop", [...new Set([...dropped, name])].join(","));
    return "/?" + link.toString();
  }

  function dropLink(params, name, text) {
    const a = document.createElement("a");
    a.href = dropHref(params, name);
    a.dataset.drop = name;
    a.textContent = text;
    return a;
  }

  /** "Showing results for sneakers (you typed snekers). Search for “red snekers” instead" */
  function renderCorrection(query, params) {
    const words = Object.entries((query.corrected && query.corrected.words) || {});
    els.corrected.hidden = !words.length;
    if (!words.length) return els.corrected.replaceChildren();
    const parts = ["Showing results for "];
    words.forEach(([, fixed], i) => {
      const strong = document.createElement("strong");
      strong.textContent = fixed;
      parts.push(...(i ? [", ", strong] : [strong]));
    });
    parts.push(` (you typed ${words.map(([typed]) => typed).join(", ")}). `);
    parts.push(dropLink(params, "spelling", `Search for “${query.q || ""}” instead`));
    els.corrected.replaceChildren(...parts);
  }

  function fieldLabel(name) {
    if (FIELD_LABELS[name]) return FIELD_LABELS[name];
    return name
      .split("_")
      .filter(Boolean)
      .map((word) => word[0].toUpperCase() + word.slice(1))
      .join(" ");
  }

  /** ``Type: handbag``, ``Color: red, blue``; bounds: ``Price ≤ 50``, ``Price 20–40`` (as views.py). */
  function chipLabel(name, parts) {
    const label = fieldLabel(name);
    const bounds = Object.fromEntries(parts.filter((p) => p.lookup !== "exact").map((p) => [p.lookup, bound(p.value)]));
    if (!Object.keys(bounds).length) return `${label}: ${[...new Set(parts.map((p) => String(p.value)))].join(", ")}`;
    if (bounds.gte && bounds.lte) return `${label} ${bounds.gte}–${bounds.lte}`;
    const signs = Object.entries(bounds).map(([lookup, value]) => `${BOUND_SIGNS[lookup] || lookup} ${value}`);
    return `${label} ${signs.join(" ")}`;
  }

  /** One removable chip per understood field (``drop`` leaves a whole field out), in the query's order. */
  function renderChips(understanding, params) {
    const grouped = new Map();
    for (const part of understanding) grouped.set(part.field, [...(grouped.get(part.field) || []), part]);
    els.understood.hidden = grouped.size === 0;
    els.chips.replaceChildren(
      ...[...grouped].map(([name, parts]) => {
        const label = chipLabel(name, parts);
        const origins = [...new Set(parts.map((p) => (p.source === "photo" ? "the photo" : `“${p.words}”`)))];
        const applied = parts.some((p) => p.applied === "filter") ? "filter" : "boost";
        const a = dropLink(params, name, `${label} `);
        a.className = "chip";
        a.dataset.applied = applied;
        a.title = `from ${origins.join(", ")} · ${APPLIED[applied]}`;
        a.setAttribute("aria-label", `Remove ${label}`);
        const x = document.createElement("span");
        x.className = "chip-x";
        x.setAttribute("aria-hidden", "true");
        x.textContent = "×";
        a.append(x);
        const li = document.createElement("li");
        li.append(a);
        return li;
      }),
    );
  }

  function setHeading(title, refine = "") {
    els.heading.replaceChildren(document.createTextNode(title));
    if (refine) {
      const span = document.createElement("span");
      span.className = "refinement";
      span.id = "refinement";
      span.textContent = `refined by “${refine}”`;
      els.heading.append(" ", span);
    }
    document.title = `${title} – Catalog shop`;
  }

  function paragraph(className, text) {
    const p = document.createElement("p");
    if (className) p.className = className;
    p.textContent = text;
    return p;
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
  }

  function card(hit, fusion) {
    const node = els.cardTemplate.content.firstElementChild.cloneNode(true);
    const f = hit.fields || {};
    node.dataset.id = String(hit.id);
    node.dataset.category = f.category ?? "";
    const img = node.querySelector("img");
    if (f.image_url) {
      img.src = f.image_url;
      img.alt = f.title || "Product picture";
    } else {
      const none = document.createElement("span");
      none.className = "no-image";
      none.setAttribute("role", "img");
      none.setAttribute("aria-label", "No picture");
      none.textContent = "◇";
      img.replaceWith(none);
    }
    const title = node.querySelector(".card-title");
    // innerHTML only for the highlight: the server HTML-escaped every character of it outside its <mark> tags
    // (catalog_search/retrieval/highlight.py); anything else stays textContent.
    if (hit.highlight && typeof hit.highlight.title === "string") title.innerHTML = hit.highlight.title;
    else title.textContent = f.title ?? "";
    const more = node.querySelector(".more-like");
    more.href = `/?similar=${encodeURIComponent(hit.id)}`;
    more.dataset.id = String(hit.id);
    more.dataset.title = f.title ?? "";
    node.querySelector(".card-brand").textContent = f.brand ?? "";
    node.querySelector(".card-category").textContent = f.category ?? "";
    if (f.product_type) node.querySelector(".card-type").textContent = f.product_type;
    else node.querySelector(".card-type-wrap").remove();
    if (f.color) node.querySelector(".card-color").textContent = f.color;
    else node.querySelector(".card-color-wrap").remove();
    node.querySelector(".price").textContent = f.price != null ? `$${f.price}` : "";
    const stock = node.querySelector(".stock");
    stock.classList.add(f.in_stock ? "in" : "out");
    stock.textContent = f.in_stock ? "In stock" : "Out of stock";
    for (const signal of ["bm25", "vector"]) {
      const row = node.querySelector(`tr[data-signal="${signal}"]`);
      row.querySelector(".why-score").textContent = fixed((hit.scores || {})[signal], 3);
      const rank = (hit.ranks || {})[signal];
      row.querySelector(".why-rank").textContent = rank == null ? "—" : String(rank);
    }
    const explain = hit.explain || {};
    // What each signal adds to the fused score (RRF: 1 / (k + rank); weighted: its weight x normalized score).
    const adds = Object.entries(explain.contributions || {})
      .map(([name, value]) => `${name === "bm25" ? "keywords" : name} ${fixed(value, 4)}`)
      .join(" + ");
    node.querySelector(".why-fused").textContent = `Fused (${fusion}): ${fixed(hit.score, 4)}${adds ? ` = ${adds}` : ""}`;
    scoreList(node.querySelector(".why-terms"), "Terms: ", explain.bm25_terms, 2);
    scoreList(node.querySelector(".why-sims"), "Similarity: ", explain.vector_similarities, 3);
    return node;
  }

  function scoreList(el, label, scores, digits) {
    const entries = Object.entries(scores || {});
    if (!entries.length) return el.remove();
    el.replaceChildren(document.createTextNode(label));
    for (const [name, value] of entries) {
      const span = document.createElement("span");
      span.textContent = `${name} ${fixed(value, digits)}`;
      el.append(span);
    }
  }

  function renderFacets(facets, params) {
    for (const name of FACETS) {
      const list = els.filters.querySelector(`[data-facet="${name}"]`);
      if (!list) continue;
      const selected = params.getAll(name);
      const options = (facets[name] || [])
        .map((o) => ({ value: String(o.value), count: o.count }))
        .filter((o) => o.value !== ""); // products without a value: nothing a shopper can pick
      for (const value of selected) {
        if (!options.some((o) => o.value === value)) options.push({ value, count: 0 });
      }
      list.replaceChildren(...options.map((o) => facetOption(name, o, selected.includes(o.value))));
      list.closest("fieldset").hidden = options.length === 0;
    }
    const inputs = els.filters.elements;
    for (const key of ["price__gte", "price__lte", "price__lt"]) inputs[key].value = params.get(key) || "";
    inputs.drop.value = dropList(params.getAll("drop").join(",")).join(","); // back/forward restores it
    inputs.in_stock.checked = ["true", "1", "yes", "on"].includes(params.get("in_stock") || "");
    renderBuckets(facets.price || [], params);
  }

  function facetOption(name, option, checked) {
    const node = els.facetTemplate.content.firstElementChild.cloneNode(true);
    const input = node.querySelector("input");
    input.name = name;
    input.value = option.value;
    input.checked = checked;
    if (name === "color") {
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.dataset.color = option.value.toLowerCase();
      swatch.setAttribute("aria-hidden", "true");
      input.after(" ", swatch);
    }
    node.querySelector(".facet-value").textContent = option.value;
    const count = node.querySelector(".facet-count");
    count.textContent = String(option.count);
    count.setAttribute("aria-label", `${option.count} results`);
    return node;
  }

  function bound(value) {
    return value === null || value === undefined ? "" : String(Number(value));
  }

  function renderBuckets(buckets, params) {
    const list = els.filters.querySelector("[data-price-buckets]");
    list.replaceChildren(
      ...buckets.map((b) => {
        const gte = bound(b.min);
        const lt = bound(b.max);
        const active = (params.get("price__gte") || "") === gte && (params.get("price__lt") || "") === lt;
        const link = new URLSearchParams(mode === "text" ? textParams(currentQuery(), 1) : params);
        for (const key of ["price__gte", "price__lte", "price__lt", "page"]) link.delete(key);
        if (!active) {
          link.set("price__gte", gte);
          if (lt) link.set("price__lt", lt);
        }
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = "?" + link.toString();
        a.dataset.gte = gte;
        a.dataset.lt = lt;
        if (active) {
          a.className = "active";
          a.setAttribute("aria-current", "true");
        }
        a.textContent = b.max == null ? `$${gte} and up` : Number(b.min) === 0 ? `Under $${lt}` : `$${gte} – $${lt}`;
        const count = document.createElement("span");
        count.className = "facet-count";
        count.textContent = String(b.count);
        count.setAttribute("aria-label", `${b.count} results`);
        li.append(a, " ", count);
        return li;
      }),
    );
  }

  function renderPager(page, hasNext, params) {
    const link = (target, rel, label) => {
      const a = document.createElement("a");
      a.className = "button";
      a.rel = rel;
      a.dataset.page = String(target);
      const p = new URLSearchParams(params);
      if (target > 1) p.set("page", String(target));
      else p.delete("page");
      a.href = mode === "photo" ? "#main" : "/?" + p.toString();
      a.textContent = label;
      return a;
    };
    const current = document.createElement("span");
    current.className = "pager-page";
    current.textContent = `Page ${page}`;
    els.pager.replaceChildren(
      page > 1 ? link(page - 1, "prev", "← Previous") : document.createElement("span"),
      current,
      hasNext ? link(page + 1, "next", "Next →") : document.createElement("span"),
    );
    els.pager.hidden = page <= 1 && !hasNext;
  }

  // ---- sort menu and total ----------------------------------------------------------------------

  function resetSort() {
    if (els.sort) els.sort.value = "relevance";
  }

  /** The menu shows the order searched; the total: "1,234 results", at least that many "1,000+ results". */
  function renderSort(query, total) {
    els.sortMenu.hidden = mode === "similar"; // nearest first: no other order
    els.sort.value = query.sort || "relevance";
    els.total.hidden = !total;
    if (!total) return;
    const plus = total.relation === "gte" ? "+" : "";
    const noun = total.value === 1 && !plus ? "result" : "results";
    els.total.textContent = `${total.value.toLocaleString("en-US")}${plus} ${noun}`;
  }

  // Outside the filters form in the page (it sits above the results), so its change is heard here.
  els.sort.addEventListener("change", () => rerun(1));

  // ---- photo input -------------------------------------------------------------------------------

  function hasFiles(event) {
    return event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  }

  function choosePhoto(file) {
    if (!file) return;
    if (!file.type.startsWith("image/")) {
      showError(`“${file.name}” is not a picture. Choose a JPEG, PNG, WebP or GIF photo.`);
      return;
    }
    if (file.size > MAX_BYTES) {
      showError(`The photo is larger than the ${MAX_BYTES / (1024 * 1024)} MB limit.`);
      return;
    }
    els.error.hidden = true;
    photoFile = file;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    els.preview.src = previewUrl;
    els.preview.hidden = false;
    els.dropzone.classList.add("has-photo");
    els.photoName.textContent = `${file.name || "Pasted photo"} · ${Math.max(1, Math.round(file.size / 1024))} KB`;
  }

  els.photoInput.addEventListener("change", () => choosePhoto(els.photoInput.files[0]));

  for (const type of ["dragenter", "dragover"]) {
    els.dropzone.addEventListener(type, (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      els.dropzone.classList.add("dragover");
    });
  }
  els.dropzone.addEventListener("dragleave", (event) => {
    if (!els.dropzone.contains(event.relatedTarget)) els.dropzone.classList.remove("dragover");
  });
  els.dropzone.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    els.dropzone.classList.remove("dragover");
    const file = event.dataTransfer.files[0];
    try {
      els.photoInput.files = event.dataTransfer.files; // so the form fields agree with the preview
    } catch {
      /* older browsers: the in-memory file is what gets searched */
    }
    choosePhoto(file);
  });
  // A photo dropped next to the zone must not make the browser navigate away from the shop.
  for (const type of ["dragover", "drop"]) {
    document.addEventListener(type, (event) => {
      if (hasFiles(event) && !els.dropzone.contains(event.target)) event.preventDefault();
    });
  }
  document.addEventListener("paste", (event) => {
    const file = Array.from(event.clipboardData ? event.clipboardData.files : []).find((f) => f.type.startsWith("image/"));
    if (file) choosePhoto(file);
  });

  // ---- forms, links and history ------------------------------------------------------------------

  els.photoForm.addEventListener("submit", (event) => {
    event.preventDefault();
    els.filters.elements.drop.value = ""; // a new photo search starts with everything understood
    if (!photoFile && els.photoInput.files[0]) choosePhoto(els.photoInput.files[0]);
    runPhoto(1);
  });

  els.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    resetFilters(); // a new query starts without filters, as the plain form does
    els.filters.elements.q.value = els.q.value.trim();
    runText(textParams(els.q.value.trim(), 1));
  });

  els.filters.addEventListener("change", (event) => {
    const name = event.target.name;
    if (name === "price__lte" || name === "price__gte") els.filters.elements.price__lt.value = "";
    rerun(1);
  });
  els.filters.addEventListener("submit", (event) => {
    event.preventDefault();
    rerun(1);
  });

  els.filters.addEventListener("click", (event) => {
    const bucket = event.target.closest("[data-price-buckets] a");
    const clear = event.target.closest("#clear-filters");
    if (!bucket && !clear) return;
    event.preventDefault();
    const inputs = els.filters.elements;
    if (clear) {
      resetFilters();
    } else {
      const active = bucket.classList.contains("active");
      inputs.price__gte.value = active ? "" : bucket.dataset.gte;
      inputs.price__lt.value = active ? "" : bucket.dataset.lt;
      inputs.price__lte.value = "";
    }
    rerun(1);
  });

  els.pager.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-page]");
    if (!link) return;
    event.preventDefault();
    rerun(Number(link.dataset.page) || 1);
    els.main.scrollIntoView({ block: "start" });
    els.main.focus({ preventScroll: true });
  });

  // A chip's remove, or "Search for … instead": the same search without that understood part.
  els.main.addEventListener("click", async (event) => {
    const link = event.target.closest("a[data-drop]");
    if (!link) return;
    event.preventDefault();
    els.filters.elements.drop.value = dropping(link.dataset.drop);
    await rerun(1);
    // The removed chip is gone: keep keyboard focus in the chips (the next one), else on the results.
    (els.understood.hidden ? els.main : els.chips.querySelector("a") || els.main).focus({ preventScroll: true });
  });

  els.grid.addEventListener("click", (event) => {
    const card = event.target.closest(".card");
    const position = card ? [...els.grid.children].indexOf(card) + 1 + (pageOf(new URLSearchParams(location.search)) - 1) * PER_PAGE : null;
    const cart = event.target.closest("button.add-to-cart");
    if (cart) {
      sendEvent("add_to_cart", card.dataset.id, position);
      cart.textContent = "Added ✓";
      cart.disabled = true;
      return;
    }
    if (card && event.target.closest(".card-title, .card-image, a.more-like")) sendEvent("click", card.dataset.id, position);
    const link = event.target.closest("a.more-like");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return; // a new tab loads the page itself
    event.preventDefault();
    resetFilters(); // the product's neighbours, unfiltered: its own category may differ from the filter
    runSimilar(link.dataset.id, 1, { title: link.dataset.title });
    els.main.scrollIntoView({ block: "start" });
    els.main.focus({ preventScroll: true });
  });

  els.hint.addEventListener("click", (event) => {
    const link = event.target.closest(".examples a");
    if (!link) return;
    event.preventDefault();
    els.q.value = link.textContent.trim();
    els.searchForm.requestSubmit();
  });

  window.addEventListener("popstate", (event) => {
    if (event.state && event.state.photo) {
      if (photoFile) runPhoto(1, { push: false });
      else showHint();
      return;
    }
    const params = new URLSearchParams(location.search);
    if (params.get("similar")) {
      syncFilters(params);
      runSimilar(params.get("similar"), pageOf(params), { push: false });
      return;
    }
    const q = (params.get("q") || "").trim();
    els.q.value = q;
    els.filters.elements.q.value = q;
    runText(params, { push: false });
  });

  /** The sidebar's inputs as in ``params`` (back and forward between similar pages). */
  function syncFilters(params) {
    resetFilters();
    for (const input of els.filters.querySelectorAll("input")) {
      const values = params.getAll(input.name);
      if (input.type === "checkbox") input.checked = values.includes(input.value);
      else if (input.name !== "q" && input.name !== "similar" && values.length) input.value = values[0];
    }
  }

  // A page served as "More like this" re-runs as such (filters, pages).
  if (els.filters.elements.similar.value) {
    mode = "similar";
    similarTo = { id: els.filters.elements.similar.value, title: els.heading.dataset.similarTitle || null };
  }

  // A photo the browser kept in the file input (back/forward cache) is ready to search again.
  if (els.photoInput.files && els.photoInput.files[0]) choosePhoto(els.photoInput.files[0]);
})();

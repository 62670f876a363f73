// Suggestions while typing in the search box (GET /api/suggest/): an ARIA combobox over a listbox of query
// completions and a few products. Without JavaScript the box is a plain search field: this script adds the
// combobox roles itself, so nothing half-works without it.
//
// Requests are debounced (DELAY ms after the last keystroke) and numbered: a response to anything but the
// latest request, or for text no longer in the box, is dropped. Up/Down move through the options, Enter
// takes the active one (a completion is searched, a product opened), Escape closes the list; with no active
// option Enter submits the form as typed (search.js, or the plain form).
(() => {
  "use strict";

  const script = document.currentScript;
  const input = document.getElementById("q");
  const form = document.getElementById("search-form");
  const list = document.getElementById("suggestions");
  if (!script || !input || !form || !list || !window.fetch) return;

  const api = script.dataset.apiSuggest;
  const DELAY = 150;
  let timer = 0;
  let asked = 0; // number of the latest request: older responses are stale
  let options = []; // [{element, kind: "completion" | "product", text, url}]
  let active = -1;

  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-haspopup", "listbox");
  input.setAttribute("aria-controls", list.id);
  input.setAttribute("aria-expanded", "false");

  function isOpen() {
    return !list.hidden;
  }

  function open() {
    if (!options.length) return;
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    setActive(-1);
  }

  function setActive(index) {
    if (options[active]) options[active].element.setAttribute("aria-selected", "false");
    active = index;
    const option = options[active];
    if (option) {
      option.element.setAttribute("aria-selected", "true");
      option.element.scrollIntoView({ block: "nearest" });
      input.setAttribute("aria-activedescendant", option.element.id);
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function forget() {
    clearTimeout(timer);
    asked += 1; // whatever is in flight is stale now
  }

  async function fetchSuggestions() {
    const q = input.value;
    if (!q.trim()) {
      close();
      return;
    }
    const ticket = ++asked;
    try {
      const response = await fetch(`${api}?${new URLSearchParams({ q, k: "8" })}`, {
        headers: { Accept: "application/json" },
      });
      const data = response.ok ? await response.json() : null;
      if (ticket !== asked || input.value !== q) return; // stale: the shopper typed on
      if (data) render(data);
      else close();
    } catch {
      if (ticket === asked) close();
    }
  }

  function heading(text) {
    const li = document.createElement("li");
    li.className = "suggest-heading";
    li.setAttribute("role", "presentation");
    li.textContent = text;
    return li;
  }

  function option(kind, index) {
    const li = document.createElement("li");
    li.id = `suggest-option-${index}`;
    li.className = `suggest-option suggest-${kind}`;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", "false");
    return li;
  }

  function completionOption(completion, index) {
    const li = option("completion", index);
    const text = document.createElement("span");
    text.className = "suggest-text";
    text.textContent = completion.text;
    li.append(text);
    if (completion.field) {
      const field = document.createElement("span");
      field.className = "suggest-field";
      field.textContent = completion.field.replace(/_/g, " ");
      li.append(field);
    }
    const count = document.createElement("span");
    count.className = "suggest-count";
    count.textContent = `${completion.estimated ? "≈" : ""}${completion.count}`;
    count.setAttribute("aria-label", `${completion.count} products`);
    li.append(count);
    return li;
  }

  function productOption(product, index) {
    const li = option("product", index);
    if (product.image_url) {
      const img = document.createElement("img");
      img.src = product.image_url;
      img.alt = "";
      img.width = 40;
      img.height = 40;
      li.append(img);
    }
    const title = document.createElement("span");
    title.className = "suggest-title";
    title.textContent = product.title;
    li.append(title);
    if (product.price !== null && product.price !== undefined) {
      const price = document.createElement("span");
      price.className = "suggest-price";
      price.textContent = `$${product.price}`;
      li.append(price);
    }
    return li;
  }

  function render(data) {
    list.replaceChildren();
    options = [];
    active = -1;
    input.removeAttribute("aria-activedescendant");
    for (const completion of data.completions || []) {
      const element = completionOption(completion, options.length);
      options.push({ element, kind: "completion", text: completion.text });
      list.append(element);
    }
    const products = data.products || [];
    if (products.length) list.append(heading("Products"));
    for (const product of products) {
      const element = productOption(product, options.length);
      options.push({ element, kind: "product", url: product.url || product.image_url });
      list.append(element);
    }
    if (options.length) open();
    else close();
  }

  function choose(index) {
    const chosen = options[index];
    if (!chosen) return;
    forget();
    close();
    if (chosen.kind === "product") {
      if (chosen.url) window.location.assign(chosen.url);
      return;
    }
    input.value = chosen.text;
    if (form.requestSubmit) form.requestSubmit();
    else form.submit();
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(fetchSuggestions, DELAY);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!options.length) return;
      event.preventDefault();
      if (!isOpen()) open();
      const step = event.key === "ArrowDown" ? 1 : -1;
      const next = active + step;
      setActive(next < -1 ? options.length - 1 : next >= options.length ? -1 : next);
    } else if (event.key === "Enter" && isOpen() && active >= 0) {
      event.preventDefault();
      choose(active);
    } else if (event.key === "Escape" && isOpen()) {
      event.preventDefault(); // a search field would also clear itself
      forget();
      close();
    }
  });

  input.addEventListener("blur", () => setTimeout(close, 100));
  list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus in the box
  list.addEventListener("click", (event) => {
    const element = event.target.closest("[role=option]");
    if (element) choose(options.findIndex((o) => o.element === element));
  });
  form.addEventListener("submit", () => {
    forget();
    close();
  });
})();

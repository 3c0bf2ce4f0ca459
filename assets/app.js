// Lumiku Local: the little the pages need beyond htmx. Live progress (Server-Sent Events),
// uploads with drag and drop, confirmations, toasts, and errors shown beside what caused them.
"use strict";

(() => {
  const TERMINAL = new Set(["completed", "failed", "canceled"]);
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  // ---------------------------------------------------------------- messages

  function toast(message, kind = "success") {
    const box = $("#toasts");
    if (!box || !message) return;
    const item = document.createElement("div");
    item.className = `toast ${kind}`;
    item.textContent = message;
    box.append(item);
    setTimeout(() => item.remove(), kind === "error" ? 9000 : 5000);
  }

  function alertHtml(message) {
    const div = document.createElement("div");
    div.className = "alert error";
    div.setAttribute("role", "alert");
    div.textContent = message;
    return div.outerHTML;
  }

  // An error answer as HTML we can show: our pages answer with an alert fragment; anything
  // else (a JSON error from the API layer, a proxy's page) is reduced to plain words.
  function errorHtml(status, contentType, body) {
    if (contentType.includes("text/html") && body.includes('class="alert')) return body;
    if (contentType.includes("json")) {
      try {
        const message = JSON.parse(body)?.error?.message;
        if (message) return alertHtml(message);
      } catch (_) { /* fall through */ }
    }
    return alertHtml(status >= 500
      ? "Something went wrong inside Lumiku. Please try again."
      : "That did not work. Reload the page and try again.");
  }

  function errorSlot(element) {
    const scope = element?.closest("form, .card, .model, .panel, .title-row, section");
    return scope ? ($(":scope > .form-error", scope) || $(".form-error", scope)) : null;
  }

  function showError(element, html) {
    const slot = errorSlot(element);
    if (slot) {
      slot.innerHTML = html;
    } else {
      const text = new DOMParser().parseFromString(html, "text/html").body.textContent.trim();
      toast(text, "error");
    }
  }

  document.addEventListener("htmx:beforeRequest", (event) => {
    const slot = errorSlot(event.detail.elt);
    if (slot) slot.innerHTML = "";
  });

  // Focus must not fall to <body> when the element holding it is swapped out (a card after
  // Cancel, a model row after Download): it moves to the new element's heading.
  let focusWasIn = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    focusWasIn = target && target.contains(document.activeElement) ? target.id : null;
    // A new generation's card may already be on the page (its event can beat this answer):
    // drop the old copy, and fetch the card afresh after the swap (see htmx:afterSettle).
    if (target?.id === "generations" && event.detail.xhr.status < 400) {
      const id = /id="generation-([0-9a-f]+)"/.exec(event.detail.serverResponse)?.[1];
      if (id) document.getElementById(`generation-${id}`)?.remove();
    }
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    const target = event.detail.target;
    if (target?.id === "generations") {
      const first = $("[data-generation]", target);
      if (first) refreshCard(first.dataset.generation, true);
    }
    if (document.activeElement === document.body || !document.activeElement) {
      const swapped = focusWasIn && document.getElementById(focusWasIn);
      const origin = event.detail.requestConfig?.elt;
      const heading = swapped && $("[tabindex='-1']", swapped);
      if (heading) heading.focus();
      else if (origin?.isConnected) (origin.matches("form") ? $("[type=submit]", origin) : origin)?.focus();
    }
    focusWasIn = null;
  });

  document.addEventListener("htmx:beforeSwap", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status < 400) return;
    event.detail.shouldSwap = false;
    event.detail.isError = false;
    const html = errorHtml(xhr.status, xhr.getResponseHeader("content-type") || "", xhr.responseText);
    showError(event.detail.requestConfig?.elt || event.detail.elt, html);
  });

  document.addEventListener("htmx:sendError", (event) => {
    showError(event.detail.elt, alertHtml("Lumiku is not answering. Is it still running?"));
  });

  document.body.addEventListener("lumiku:toast", (event) => {
    toast(event.detail.message, event.detail.kind);
  });

  // ---------------------------------------------------------------- confirmations

  function confirmDialog(text, okLabel) {
    const dialog = $("#confirm");
    if (!dialog?.showModal) return Promise.resolve(window.confirm(text));
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = okLabel || "Delete";
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    });
  }

  document.addEventListener("htmx:confirm", (event) => {
    const element = event.detail.elt;
    if (!element.dataset.confirm) return;
    event.preventDefault();
    confirmDialog(element.dataset.confirm, element.dataset.confirmOk).then((ok) => {
      if (ok) event.detail.issueRequest(true);
    });
  });

  // ---------------------------------------------------------------- small actions

  document.addEventListener("click", async (event) => {
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const text = $(copy.dataset.copy)?.textContent.trim() || "";
      try {
        await navigator.clipboard.writeText(text);
        toast(`Copied ${text}.`);
      } catch (_) {
        toast(`Copy did not work here; the seed is ${text}.`, "error");
      }
      return;
    }
    const quit = event.target.closest("[data-quit]");
    if (quit) quitLumiku();
    const close = event.target.closest("[data-close-details]");
    if (close) {
      const details = close.closest("details");
      details.open = false;
      $("summary", details)?.focus();
    }
  });

  // Opening "Rename" hides its button: the focus goes to the field instead of being lost.
  document.addEventListener("toggle", (event) => {
    const details = event.target;
    if (details.matches?.("details.rename") && details.open) $("input", details)?.select();
  }, true);

  // The admin page polls; it waits while someone is reading with the keyboard inside it.
  document.addEventListener("htmx:beforeRequest", (event) => {
    const live = event.detail.elt;
    if (live.id === "admin-live" && live.contains(document.activeElement)) event.preventDefault();
  });

  async function quitLumiku() {
    const ok = await confirmDialog(
      "Quit Lumiku? Generations that are running pause and continue the next time you start it.",
      "Quit Lumiku",
    );
    if (!ok) return;
    try {
      const response = await fetch("/api/admin/shutdown", { method: "POST" });
      if (!response.ok) {
        const body = await response.text();
        showError(null, errorHtml(response.status, response.headers.get("content-type") || "", body));
        return;
      }
    } catch (_) { /* it stopped before answering: that is fine */ }
    stopEvents();
    const main = $("#main");
    main.innerHTML = "";
    const box = document.createElement("section");
    box.className = "panel stopped";
    box.innerHTML = "<h1>Lumiku has stopped</h1><p>You can close this tab. Start Lumiku again to continue; unfinished generations resume by themselves.</p>";
    main.append(box);
  }

  // ---------------------------------------------------------------- the generate form

  function setUpGenerateForm(form) {
    const cost = $("#cost", form);
    const count = $("#count", form);
    const styles = $("[data-styles]", form);
    const size = $("#size", form);
    const update = () => {
      const model = $("input[name=model]:checked", form);
      const perImage = Number(model?.dataset.cost || 0);
      const images = Math.max(0, Number(count.value) || 0);
      const balance = Number($("#balance [data-balance]")?.dataset.balance ?? cost.dataset.balance);
      const total = perImage * images;
      if (!model) {
        cost.textContent = "No model is installed: download one on the Models page, or enable the Instant model.";
      } else {
        const after = balance - total;
        cost.textContent = after >= 0
          ? `Costs ${total} credit${total === 1 ? "" : "s"} · balance after: ${after}`
          : `Costs ${total} credits, but you have ${balance}. Lower the number of images.`;
      }
      const instant = model?.dataset.provider === "dicebear";
      if (styles) {
        styles.hidden = !instant;
        $$("input", styles).forEach((input) => { input.disabled = !instant; });
      }
      if (model) {
        const min = Number(model.dataset.min), max = Number(model.dataset.max);
        $$("option", size).forEach((option) => {
          const px = Number(option.value);
          option.disabled = px < min || px > max;
        });
        if (size.selectedOptions[0]?.disabled) size.value = model.dataset.size;
      }
      const chosenStyle = $("input[name=style]:checked", form);
      if (chosenStyle) {
        $("[data-style-name]", form).textContent = chosenStyle.value;
        $("[data-style-preview]", form).src = $("img", chosenStyle.closest("label")).src;
      }
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    document.body.addEventListener("htmx:afterSettle", update);
    $("[data-fill-prompt]", form).addEventListener("change", (event) => {
      const option = event.target.selectedOptions[0];
      if (!option?.dataset.prompt) return;
      $("#prompt", form).value = option.dataset.prompt;
      const style = option.dataset.style && $(`input[name=style][value="${CSS.escape(option.dataset.style)}"]`, form);
      if (style) style.checked = true;
      update();
    });
    form.addEventListener("htmx:afterRequest", (event) => {
      if (event.detail.successful) $("#no-generations")?.remove();
    });
    update();
  }

  // ---------------------------------------------------------------- uploads

  function setUpUpload(zone) {
    const input = $("input[type=file]", zone);
    const slot = $(".form-error", zone);
    const maxBytes = Number(zone.dataset.maxBytes);
    const allowed = new Set(["image/png", "image/jpeg", "image/webp"]);

    async function send(file) {
      if (!allowed.has(file.type)) {
        slot.insertAdjacentHTML("beforeend", alertHtml(`${file.name}: that is not a PNG, JPEG or WebP image.`));
        return;
      }
      if (file.size > maxBytes) {
        const mb = (n) => (n / 1048576).toFixed(1);
        slot.insertAdjacentHTML("beforeend", alertHtml(`${file.name} is ${mb(file.size)} MB; the limit is ${mb(maxBytes)} MB.`));
        return;
      }
      const body = new FormData();
      body.append("file", file, file.name);
      let response;
      try {
        response = await fetch(zone.dataset.upload, { method: "POST", body, headers: { "HX-Request": "true" } });
      } catch (_) {
        slot.insertAdjacentHTML("beforeend", alertHtml(`${file.name}: Lumiku is not answering. Is it still running?`));
        return;
      }
      const text = await response.text();
      if (!response.ok) {
        const html = errorHtml(response.status, response.headers.get("content-type") || "", text);
        const message = new DOMParser().parseFromString(html, "text/html").body.textContent.trim();
        slot.insertAdjacentHTML("beforeend", alertHtml(`${file.name}: ${message}`));
        return;
      }
      addTiles(text);
      toast(`Uploaded ${file.name}.`);
    }

    async function sendAll(files) {
      slot.innerHTML = "";
      for (const file of files) await send(file);  // one at a time: the server re-encodes each
    }

    input.addEventListener("change", () => { sendAll(Array.from(input.files)); input.value = ""; });
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      sendAll(Array.from(event.dataTransfer.files));
    });
  }

  function addTiles(html) {
    const gallery = $("#gallery");
    if (!gallery) return;
    const template = document.createElement("template");
    template.innerHTML = html;
    const fresh = Array.from(template.content.querySelectorAll("li.tile")).filter((tile) => !document.getElementById(tile.id));
    gallery.prepend(...fresh);
    if (fresh.length) $("#no-avatars")?.remove();
    const counter = $("[data-gallery-count]");
    if (counter) counter.textContent = String($$("li.tile", gallery).length);
  }

  // ---------------------------------------------------------------- live progress

  // generation id -> {again, tiles} while a refresh is in flight: events that arrive meanwhile
  // ask for one more refresh, and for the gallery tiles if any of them asked for them
  const refreshing = new Map();

  async function fetchHtml(url) {
    const response = await fetch(url, { headers: { "HX-Request": "true" } });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.text();
  }

  function replaceWith(element, html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    if (!fresh) return null;
    const focused = element.contains(document.activeElement) ? document.activeElement.getAttribute("hx-post") : null;
    element.replaceWith(fresh);
    htmx.process(fresh);
    if (focused) $(`[hx-post="${focused}"]`, fresh)?.focus();
    return fresh;
  }

  async function refreshCard(id, withTiles) {
    const pending = refreshing.get(id);
    if (pending) {
      pending.again = true;
      pending.tiles ||= withTiles;
      return;
    }
    refreshing.set(id, { again: false, tiles: false });
    try {
      const busy = document.getElementById(`generation-${id}`);
      if (busy?.querySelector(".htmx-request")) {
        // its Cancel or Retry is on the way: replacing the card now would drop that answer
        busy.addEventListener("htmx:afterRequest", () => refreshCard(id, withTiles), { once: true });
      } else {
        const html = await fetchHtml(`/ui/generations/${id}/card`);
        const card = document.getElementById(`generation-${id}`);  // looked up after the fetch
        if (card) replaceWith(card, html);
        else {
          const list = $("#generations");
          list?.insertAdjacentHTML("afterbegin", html);
          if (list) htmx.process(list.firstElementChild);
          $("#no-generations")?.remove();
        }
        if (withTiles) addTiles(await fetchHtml(`/ui/generations/${id}/avatars`));
      }
    } catch (_) { /* the next event or reconnect refreshes it */ }
    const { again, tiles } = refreshing.get(id);
    refreshing.delete(id);
    if (again) refreshCard(id, tiles || withTiles);
  }

  async function refreshBalance() {
    try {
      const balance = $("#balance");
      if (balance) replaceWith(balance, await fetchHtml("/ui/balance"));
      $("#generate")?.dispatchEvent(new Event("change"));
    } catch (_) { /* shown again on the next change */ }
  }

  function onGeneration(event) {
    const card = document.getElementById(`generation-${event.id}`);
    if (!card) {
      const list = $("#generations");
      if (list && list.dataset.project === event.projectId) refreshCard(event.id, true);
      return;
    }
    const percent = Math.round(event.progress);
    $(".progress-bar", card).style.width = `${event.progress}%`;
    $("[role=progressbar]", card).setAttribute("aria-valuenow", String(percent));
    if (event.status === "processing") {
      const step = event.step ? ` · ${event.step}` : "";
      $("[data-step]", card).textContent = `${event.countCompleted} of ${event.countRequested} images · ${percent}%${step}`;
    }
    const changed = event.status !== card.dataset.status || String(event.countCompleted) !== card.dataset.completed;
    if (changed) {
      refreshCard(event.id, String(event.countCompleted) !== card.dataset.completed);
      if (TERMINAL.has(event.status)) refreshBalance();
    }
  }

  async function refreshModel(key) {
    const row = $(`[data-model="${CSS.escape(key)}"]`);
    if (!row) return;
    try { replaceWith(row, await fetchHtml(`/ui/models/${encodeURIComponent(key)}/row`)); } catch (_) { /* next event */ }
  }

  function onDownload(event) {
    const row = $(`[data-model="${CSS.escape(event.modelKey)}"]`);
    if (!row) return;
    const bar = $("[data-download-progress]", row);
    if (event.downloading && bar) {
      $(".progress-bar", bar).style.width = `${event.progress}%`;
      bar.setAttribute("aria-valuenow", String(Math.round(event.progress)));
      const d = event.download;
      const gb = (n) => (n / 1e9).toFixed(2);  // decimal GB, as the model sizes are given
      const text = $("[data-download-text]", row);
      if (text) text.textContent = d ? `${event.progress}% · ${gb(d.bytesDone)} of ${gb(d.bytesTotal)} GB` : `${event.progress}%`;
    } else {
      refreshModel(event.modelKey);
    }
  }

  let source = null;
  let lostAt = null;
  let bannerTimer = null;

  function startEvents() {
    if (!window.EventSource) return;
    source = new EventSource("/api/events");
    source.addEventListener("generation", (message) => onGeneration(JSON.parse(message.data)));
    source.addEventListener("download", (message) => onDownload(JSON.parse(message.data)));
    source.addEventListener("open", () => {
      clearTimeout(bannerTimer);
      $("#connection").hidden = true;
      // Catch up on what happened before this stream started (between the page being rendered
      // and now), or while it was down (a restart): unfinished cards are fetched afresh.
      const live = $$("[data-generation]").filter((card) => !TERMINAL.has(card.dataset.status));
      live.forEach((card) => refreshCard(card.dataset.generation, true));
      const wasLost = lostAt !== null;
      lostAt = null;
      if (wasLost) $$("[data-model]").forEach((row) => refreshModel(row.dataset.model));
      if (live.length || wasLost) refreshBalance();
    });
    source.addEventListener("error", () => {
      if (lostAt === null) {
        lostAt = Date.now();
        bannerTimer = setTimeout(() => { $("#connection").hidden = false; }, 1500);
      }
      // The browser retries a dropped stream by itself, but gives up on an error answer
      // (a proxy's 502, a restart's 503): then start a new one, a little later.
      if (source.readyState === EventSource.CLOSED) {
        const closed = source;
        setTimeout(() => { if (source === closed) { source = null; startEvents(); } }, 3000);
      }
    });
  }

  function stopEvents() {
    source?.close();
    source = null;
    clearTimeout(bannerTimer);
  }

  // Slow generations: a warning after 5 minutes, a retry after 10 (the original system's rules).
  function checkAges() {
    const now = Date.now();
    $$("[data-generation]").forEach((card) => {
      if (TERMINAL.has(card.dataset.status)) return;
      const age = (now - Date.parse(card.dataset.created)) / 1000;
      const warn = $("[data-warn]", card);
      if (warn && age >= Number(warn.dataset.warnAfter)) warn.hidden = false;
      const retry = $("[data-retry-after]", card);
      if (retry && age >= Number(retry.dataset.retryAfter)) retry.hidden = false;
    });
  }

  function start() {
    const form = $("#generate");
    if (form) setUpGenerateForm(form);
    const zone = $("[data-upload]");
    if (zone) setUpUpload(zone);
    startEvents();
    setInterval(checkAges, 10000);
    window.addEventListener("pagehide", stopEvents);
    document.documentElement.dataset.ready = String(Math.round(performance.now()));  // bench/ui.py
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// Lumiku Local: the gallery of a project page. Viewer (lightbox), compare, selection with bulk
// actions, favourites, filters and paging. Uses window.Lumiku from app.js (loaded first).
"use strict";

(() => {
  const L = window.Lumiku;
  const section = document.querySelector("[data-gallery-section]");
  if (!L || !section) return;

  const API = "/api/apps/avatar-creator";
  const UNDO_MS = 12000;  // how long a delete's Undo stays (paused while pointed at or focused)
  const MAX_IDS = 1000;  // avatars.MAX_IDS: one bulk delete or restore names at most this many
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  const gallery = $("#gallery", section);
  const projectId = section.dataset.projectId;
  const models = JSON.parse($("#gallery-models", section)?.textContent || "{}");
  const filterForm = $("[data-gallery-filter]", section);
  const emptyNote = $("[data-gallery-empty]", section);
  const counter = $("[data-gallery-count]", section);

  const tiles = () => $$("li.tile", gallery);
  const tileOf = (id) => document.getElementById(`avatar-${id}`);
  const infoOf = (tile) => JSON.parse(tile.dataset.info);
  const moreSentinel = () => $(".gallery-more", gallery);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  // ---------------------------------------------------------------- requests

  // A JSON request to the API; null (with the error shown as a toast) when it did not work.
  async function send(method, url, body) {
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      L.toast("Lumiku is not answering. Is it still running?", "error");
      return null;
    }
    if (!response.ok) {
      const text = await response.text();
      L.showError(null, L.errorHtml(response.status, response.headers.get("content-type") || "", text));
      return null;
    }
    return response;
  }

  async function refreshCount() {
    try {
      const response = await fetch(`/ui/projects/${projectId}/avatars/count`);
      if (response.ok && counter) counter.textContent = await response.text();
    } catch (_) { /* the next change reads it again */ }
  }

  // ---------------------------------------------------------------- toasts with Undo

  // A toast with an Undo button; `undo` returns whether it worked (then the toast goes).
  function undoToast(message, undo) {
    const box = $("#toasts");
    const item = document.createElement("div");
    item.className = "toast with-action";
    const text = document.createElement("span");
    text.textContent = message;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "toast-action";
    button.textContent = "Undo";
    item.append(text, button);
    box.append(item);
    let timer = null;
    const arm = () => { clearTimeout(timer); timer = setTimeout(() => item.remove(), UNDO_MS); };
    const hold = () => clearTimeout(timer);
    item.addEventListener("pointerenter", hold);
    item.addEventListener("pointerleave", arm);
    item.addEventListener("focusin", hold);
    item.addEventListener("focusout", arm);
    button.addEventListener("click", async () => {
      button.disabled = true;
      if (await undo()) item.remove();
      else button.disabled = false;
    });
    arm();
    return item;
  }

  // ---------------------------------------------------------------- filters and paging

  function currentFilter() {
    const data = new FormData(filterForm);
    return {
      show: data.get("show") || "",
      generationId: data.get("generationId") || "",
      order: data.get("order") || "newest",
    };
  }

  function filterQuery(filter) {
    const query = new URLSearchParams();
    if (filter.show === "favorite") query.set("favorite", "true");
    if (filter.show === "upload") query.set("source", "upload");
    if (filter.generationId) query.set("generationId", filter.generationId);
    if (filter.order !== "newest") query.set("order", filter.order);
    return query.toString();
  }

  function matches(tile, filter) {
    if (filter.show === "favorite" && tile.dataset.favorite !== "true") return false;
    if (filter.show === "upload" && tile.dataset.source !== "upload") return false;
    return !filter.generationId || tile.dataset.generationId === filter.generationId;
  }

  const filtered = (filter) => Boolean(filter.show || filter.generationId);
  let matching = null;  // how many avatars the filter matches (null: all of them)

  function showEmptyNote() {
    const noAvatars = $("#no-avatars", section);
    const filter = currentFilter();
    emptyNote.hidden = tiles().length > 0 || Boolean(noAvatars);
    if (emptyNote.hidden) return;
    if (filter.show === "favorite") emptyNote.textContent = "No favourites here yet. Star an avatar to keep it in this list.";
    else if (filter.show === "upload") emptyNote.textContent = "No uploaded photos here.";
    else if (filter.generationId) emptyNote.textContent = "No avatars of this generation are left.";
    else emptyNote.textContent = "No avatars yet. Generate some or upload a photo.";
  }

  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  // Each filter change starts a new load; answers to an older one are dropped.
  let loadToken = 0;

  async function reload() {
    const token = ++loadToken;
    const filter = currentFilter();
    clearSelection();
    gallery.setAttribute("aria-busy", "true");
    let response;
    try {
      response = await fetch(`/ui/projects/${projectId}/avatars?${filterQuery(filter)}`, { headers: { "HX-Request": "true" } });
    } catch (_) {
      response = null;
    }
    if (token !== loadToken) return;
    gallery.setAttribute("aria-busy", "false");
    if (!response?.ok) {
      L.toast("The avatars did not load. Is Lumiku still running?", "error");
      return;
    }
    const html = await response.text();
    if (token !== loadToken) return;
    const header = response.headers.get("X-Gallery-Matching");
    matching = filtered(filter) && header !== null ? Number(header) : null;
    gallery.replaceChildren(parse(html));
    say(matching === null ? "" : `${plural(matching, "avatar")} shown.`);
    showEmptyNote();
    watchMore();
  }

  const status = $("[data-gallery-status]", section);
  function say(text) { if (status) status.textContent = text; }

  let loadingMore = null;

  // The next page replaces the sentinel at the end of the list; tiles already shown are kept.
  function loadMore() {
    const sentinel = moreSentinel();
    if (!sentinel) return Promise.resolve(false);
    if (loadingMore) return loadingMore;
    const token = loadToken;
    const button = $("[data-load-more]", sentinel);
    button.disabled = true;
    button.textContent = "Loading more avatars…";
    loadingMore = (async () => {
      try {
        const html = await L.fetchHtml(sentinel.dataset.more);
        if (token !== loadToken || !sentinel.isConnected) return false;
        const content = parse(html);
        $$("li.tile", content).forEach((tile) => { if (tileOf(tile.dataset.avatar)) tile.remove(); });
        sentinel.replaceWith(content);
        watchMore();
        return true;
      } catch (_) {
        button.disabled = false;
        button.textContent = "Load more avatars";
        L.toast("More avatars did not load. Is Lumiku still running?", "error");
        return false;
      } finally {
        loadingMore = null;
      }
    })();
    return loadingMore;
  }

  const observer = window.IntersectionObserver
    ? new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) loadMore();
    }, { rootMargin: "800px 0px" })
    : null;

  function watchMore() {
    observer?.disconnect();
    const sentinel = moreSentinel();
    if (sentinel && observer) observer.observe(sentinel);
  }

  // New tiles from live progress or an upload (app.js addTiles): shown when they fit the filter.
  function add(fresh) {
    const filter = currentFilter();
    const fitting = fresh.filter((tile) => matches(tile, filter));
    if (filter.order === "oldest") {
      if (!moreSentinel()) gallery.append(...fitting);  // else they come with the last page
    } else {
      gallery.prepend(...fitting);
    }
    if (fitting.length) $("#no-avatars", section)?.remove();
    if (fresh.length) refreshCount();
    fresh.forEach(offerGeneration);
    showEmptyNote();
  }

  // A generation that started after the page came: the filter offers it too, newest first.
  function offerGeneration(tile) {
    const id = tile.dataset.generationId;
    const select = $("[data-gallery-generations]", filterForm);
    if (!id || !select || Array.from(select.options).some((option) => option.value === id)) return;
    const avatar = infoOf(tile);
    let words = (avatar.prompt || "No prompt").split(/\s+/).join(" ");
    if (words.length > 48) words = `${words.slice(0, 48).replace(/\s+\S*$/, "")}…`;
    select.options[0].after(new Option(`${words} · just now`, id));
  }

  filterForm.addEventListener("change", reload);
  filterForm.addEventListener("submit", (event) => { event.preventDefault(); reload(); });
  gallery.addEventListener("click", (event) => {
    if (event.target.closest("[data-load-more]")) loadMore();
  });

  // ---------------------------------------------------------------- selection

  const selected = new Set();
  let anchor = null;  // the avatar a shift-click range starts from
  let compareNext = false;  // the viewer's Compare: the second avatar chosen opens compare
  const bar = $("[data-selection-bar]", section);
  const selectMode = $("[data-select-mode]", section);

  function mark(tile, on) {
    const id = tile.dataset.avatar;
    if (on) selected.add(id);
    else selected.delete(id);
    tile.classList.toggle("selected", on);
    const box = $("[data-select]", tile);
    if (box) box.checked = on;
  }

  function choose(tile, on, range) {
    const list = tiles();
    const from = range && anchor ? list.indexOf(tileOf(anchor)) : -1;
    if (from >= 0) {
      const to = list.indexOf(tile);
      list.slice(Math.min(from, to), Math.max(from, to) + 1).forEach((each) => mark(each, on));
    } else {
      mark(tile, on);
    }
    anchor = tile.dataset.avatar;
    selectionChanged();
  }

  function setSelecting(on) {
    section.classList.toggle("selecting", on);
    selectMode.setAttribute("aria-pressed", String(on));
  }

  function selectionChanged() {
    for (const id of selected) if (!tileOf(id)) selected.delete(id);
    const count = selected.size;
    bar.hidden = count === 0;
    document.body.classList.toggle("has-selection", count > 0);
    $("[data-selection-count]", bar).textContent = `${count} selected`;
    $("[data-selection-compare]", bar).hidden = count !== 2;
    if (count > 0) setSelecting(true);
    if (compareNext && count === 2) {
      compareNext = false;
      openCompare(chosenIds(), $("[data-selection-compare]", bar));
    }
  }

  function chosenIds() {  // in the gallery's order
    return tiles().map((tile) => tile.dataset.avatar).filter((id) => selected.has(id));
  }

  function clearSelection() {
    tiles().forEach((tile) => { if (selected.has(tile.dataset.avatar)) mark(tile, false); });
    selected.clear();
    anchor = null;
    compareNext = false;
    selectionChanged();
  }

  gallery.addEventListener("click", (event) => {
    const box = event.target.closest("[data-select]");
    if (box) {
      choose(box.closest("li.tile"), box.checked, event.shiftKey);
      return;
    }
    const link = event.target.closest(".tile-link");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.altKey) return;
    const tile = link.closest("li.tile");
    event.preventDefault();
    if (section.classList.contains("selecting")) choose(tile, !selected.has(tile.dataset.avatar), event.shiftKey);
    else if (event.shiftKey) choose(tile, true, false);  // shift-click starts a selection
    else openViewer(tile);
  });

  selectMode.addEventListener("click", () => {
    const on = selectMode.getAttribute("aria-pressed") !== "true";
    if (!on) clearSelection();
    setSelecting(on);
  });

  $("[data-select-all]", section).addEventListener("click", () => {
    const list = tiles();
    list.forEach((tile) => mark(tile, true));
    anchor = list.at(-1)?.dataset.avatar || null;
    selectionChanged();
    if (list.length && moreSentinel()) say(`Selected the ${list.length} avatars loaded so far; scroll for more.`);
  });

  $("[data-selection-clear]", bar).addEventListener("click", () => {
    clearSelection();
    setSelecting(false);
    selectMode.focus();
  });

  $("[data-selection-compare]", bar).addEventListener("click", (event) => {
    openCompare(chosenIds(), event.currentTarget);
  });

  $("[data-selection-delete]", bar).addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    const done = await deleteAvatars(chosenIds());
    button.disabled = false;
    if (done) {
      setSelecting(false);
      done.toast.querySelector("button")?.focus();  // the bar is gone: Undo is the next thing
    }
  });

  $("[data-selection-zip]", bar).addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const ids = chosenIds();
    button.disabled = true;
    const label = button.lastChild.textContent;
    button.lastChild.textContent = " Preparing zip…";
    try {
      const response = await send("POST", `${API}/exports`, { avatarIds: ids });
      if (!response) return;
      const name = fileName(response.headers.get("content-disposition")) || "avatars.zip";
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);  // the download has its copy by then
      L.toast(`Downloading ${plural(ids.length, "avatar")} as ${name}.`);
    } finally {
      button.disabled = false;
      button.lastChild.textContent = label;
    }
  });

  function fileName(disposition) {
    if (!disposition) return null;
    const encoded = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
    if (encoded) {
      try { return decodeURIComponent(encoded[1]); } catch (_) { /* the plain one below */ }
    }
    return /filename="?([^";]+)"?/i.exec(disposition)?.[1] || null;
  }

  // ---------------------------------------------------------------- favourites

  gallery.addEventListener("click", (event) => {
    const star = event.target.closest("[data-star]");
    if (star) setFavorite(star.closest("li.tile").dataset.avatar, star.getAttribute("aria-pressed") !== "true");
  });

  async function setFavorite(id, on) {
    const response = await send("PATCH", `${API}/avatars/${encodeURIComponent(id)}`, { favorite: on });
    if (!response) return;
    const avatar = (await response.json()).avatar;
    const tile = tileOf(id);
    if (tile) {
      tile.dataset.info = JSON.stringify(avatar);
      tile.dataset.favorite = String(avatar.favorite);
      tile.classList.toggle("favorite", avatar.favorite);
      $("[data-star]", tile).setAttribute("aria-pressed", String(avatar.favorite));
    }
    if (viewing && viewing.dataset.avatar === id) showInViewer(viewing);
  }

  // ---------------------------------------------------------------- delete, with Undo

  // Moves the avatars to the trash (their tiles go); the toast's Undo brings them back where
  // they were. Returns {toast, message, undo}, or null when the delete did not happen.
  async function deleteAvatars(ids) {
    if (!ids.length) return null;
    const records = tiles()
      .filter((tile) => ids.includes(tile.dataset.avatar))
      .map((tile) => ({ tile, after: tile.previousElementSibling?.id || null }));
    for (let start = 0; start < ids.length; start += MAX_IDS) {
      const response = await send("POST", `${API}/avatars/delete`, { avatarIds: ids.slice(start, start + MAX_IDS) });
      if (!response) {
        if (start > 0) { refreshCount(); reload(); }  // an earlier part went: show what is left
        return null;
      }
    }
    records.forEach(({ tile }) => { mark(tile, false); tile.remove(); });
    selectionChanged();
    refreshCount();
    showEmptyNote();
    const name = records.length === 1 ? infoOf(records[0].tile).name : null;
    const message = name ? `Deleted “${name}”.` : `Deleted ${plural(ids.length, "avatar")}.`;
    const undo = async () => {
      for (let start = 0; start < ids.length; start += MAX_IDS) {
        const response = await send("POST", `${API}/avatars/restore`, { avatarIds: ids.slice(start, start + MAX_IDS) });
        if (!response) return false;
      }
      records.forEach(({ tile, after }) => {
        if (tileOf(tile.dataset.avatar)) return;
        const before = after && document.getElementById(after);
        if (before && gallery.contains(before)) before.after(tile);
        else if (!after) gallery.prepend(tile);
        else gallery.insertBefore(tile, moreSentinel());  // its neighbour went meanwhile
      });
      $("#no-avatars", section)?.remove();
      refreshCount();
      showEmptyNote();
      L.toast(name ? `Restored “${name}”.` : `Restored ${plural(ids.length, "avatar")}.`);
      const first = tileOf(records[0].tile.dataset.avatar);
      if (!viewer.open) $(".tile-link", first)?.focus();
      return true;
    };
    return { toast: undoToast(message, undo), message, undo };
  }

  // The avatar page's Delete lands here (?deleted=): its Undo is offered on this page.
  const deletedOnItsPage = $("template[data-deleted-avatar]", section);
  if (deletedOnItsPage) {
    const { id, name } = deletedOnItsPage.dataset;
    const address = new URL(window.location.href);
    address.searchParams.delete("deleted");
    history.replaceState(history.state, "", address);
    undoToast(`Deleted “${name}”.`, async () => {
      const response = await send("POST", `${API}/avatars/${encodeURIComponent(id)}/restore`);
      if (!response) return false;
      await reload();
      refreshCount();
      L.toast(`Restored “${name}”.`);
      return true;
    });
  }

  // ---------------------------------------------------------------- the viewer

  const viewer = $("#viewer");
  const viewerImage = $("[data-viewer-image]", viewer);
  const viewerName = $("[data-viewer-name]", viewer);
  const viewerStar = $("[data-viewer-star]", viewer);
  const viewerUndo = document.createElement("p");
  viewerUndo.className = "alert info viewer-undo";
  viewerUndo.hidden = true;
  $("[data-viewer-params]", viewer).before(viewerUndo);
  let viewing = null;  // the tile shown

  function params(avatar) {
    return [
      ["Source", avatar.source === "upload" ? "Uploaded photo" : "Generated"],
      ["Prompt", avatar.prompt],
      ["Model", avatar.modelKey ? models[avatar.modelKey] || avatar.modelKey : null],
      ["Style", avatar.style],
      ["Seed", avatar.seed],
      ["Size", `${avatar.width} × ${avatar.height} px`],
      ["Variation", avatar.variationKey],
    ].filter(([, value]) => value !== null && value !== undefined && value !== "");
  }

  function fillParams(list, avatar) {
    list.replaceChildren(...params(avatar).map(([label, value]) => {
      const row = document.createElement("div");
      const term = document.createElement("dt");
      const detail = document.createElement("dd");
      term.textContent = label;
      detail.textContent = String(value);
      row.append(term, detail);
      return row;
    }));
  }

  function showInViewer(tile) {
    viewing = tile;
    const avatar = infoOf(tile);
    const list = tiles();
    const index = list.indexOf(tile);
    const total = matching ?? Number(counter?.textContent || list.length);
    viewerImage.src = avatar.imageUrl;
    viewerImage.alt = avatar.name;
    viewerImage.width = avatar.width;
    viewerImage.height = avatar.height;
    viewerName.textContent = avatar.name;
    $("[data-viewer-position]", viewer).textContent = `${index + 1} of ${Math.max(total, list.length)}`;
    $("[data-viewer-download]", viewer).href = `${avatar.imageUrl}?download=true`;
    $("[data-viewer-page]", viewer).href = `/avatars/${avatar.id}`;
    viewerStar.setAttribute("aria-pressed", String(avatar.favorite));
    $("[data-viewer-prev]", viewer).disabled = index <= 0;
    $("[data-viewer-next]", viewer).disabled = index >= list.length - 1 && !moreSentinel();
    fillParams($("[data-viewer-params]", viewer), avatar);
  }

  function openViewer(tile) {
    viewerUndo.hidden = true;
    showInViewer(tile);
    viewer.showModal();
    viewerName.focus();
  }

  async function step(by) {
    if (!viewing) return;
    let list = tiles();
    let index = list.indexOf(viewing) + by;
    if (index >= list.length && (await loadMore())) {
      list = tiles();
    }
    if (index < 0 || index >= list.length) return;
    showInViewer(list[index]);
    if (document.activeElement?.disabled !== false) viewerName.focus();
  }

  viewer.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
  });
  viewer.addEventListener("click", (event) => {
    if (event.target === viewer) viewer.close();  // a click on the backdrop
  });
  $("[data-viewer-prev]", viewer).addEventListener("click", () => step(-1));
  $("[data-viewer-next]", viewer).addEventListener("click", () => step(1));
  $("[data-viewer-close]", viewer).addEventListener("click", () => viewer.close());
  viewerStar.addEventListener("click", () => {
    if (viewing) setFavorite(viewing.dataset.avatar, viewerStar.getAttribute("aria-pressed") !== "true");
  });

  viewer.addEventListener("close", () => {
    const tile = viewing;
    viewing = null;
    viewerImage.removeAttribute("src");
    if (tile?.isConnected) {
      tile.scrollIntoView({ block: "nearest" });
      $(".tile-link", tile).focus();
    } else {
      (tiles()[0] ? $(".tile-link", tiles()[0]) : $("#gallery-title"))?.focus();
    }
  });

  $("[data-viewer-delete]", viewer).addEventListener("click", async () => {
    const tile = viewing;
    if (!tile) return;
    const list = tiles();
    const index = list.indexOf(tile);
    const done = await deleteAvatars([tile.dataset.avatar]);
    if (!done) return;
    const rest = tiles();
    const next = rest[Math.min(index, rest.length - 1)];
    viewerUndo.replaceChildren(document.createTextNode(`${done.message} `));
    const undo = document.createElement("button");
    undo.type = "button";
    undo.className = "button small";
    undo.textContent = "Undo";
    undo.addEventListener("click", async () => {
      if (!(await done.undo())) return;
      done.toast.remove();
      viewerUndo.hidden = true;
      const back = tileOf(tile.dataset.avatar);
      if (back) showInViewer(back);
      viewerName.focus();
    });
    viewerUndo.append(undo);
    viewerUndo.hidden = false;
    if (next) {
      showInViewer(next);
      undo.focus();
    } else {
      viewer.close();
      done.toast.querySelector("button")?.focus();
    }
  });

  $("[data-viewer-compare]", viewer).addEventListener("click", () => {
    const id = viewing?.dataset.avatar;
    if (!id) return;
    const others = chosenIds().filter((other) => other !== id);
    if (others.length === 1) {
      const link = $(".tile-link", viewing);
      viewer.close();
      openCompare([others[0], id], link);
      return;
    }
    clearSelection();
    mark(viewing, true);
    anchor = id;
    compareNext = true;
    selectionChanged();
    viewer.close();
    L.toast(`Now choose the avatar to compare with “${infoOf(tileOf(id)).name}”.`);
  });

  // ---------------------------------------------------------------- compare

  const compare = $("#compare");
  let compareOpener = null;

  function openCompare(ids, opener) {
    const avatars = ids.slice(0, 2).map(tileOf).filter(Boolean).map(infoOf);
    if (avatars.length !== 2) return;
    compareOpener = opener?.isConnected ? opener : null;
    avatars.forEach((avatar, index) => {
      const item = $$("[data-compare-item]", compare)[index];
      const image = $("img", item);
      image.src = avatar.imageUrl;
      image.alt = avatar.name;
      $("[data-compare-name]", item).textContent = avatar.name;
      fillParams($("[data-compare-params]", item), avatar);
    });
    const under = $("[data-compare-under]", compare), over = $("[data-compare-over]", compare);
    under.src = avatars[0].imageUrl;
    under.alt = avatars[0].name;
    over.src = avatars[1].imageUrl;
    over.alt = avatars[1].name;
    const range = $("[data-compare-range]", compare);
    range.setAttribute("aria-label", `Slide between “${avatars[0].name}” (left) and “${avatars[1].name}” (right)`);
    slide();
    compare.showModal();
    $("#compare-title").focus();
  }

  function slide() {
    const range = $("[data-compare-range]", compare);
    $("[data-compare-over]", compare).style.clipPath = `inset(0 0 0 ${range.value}%)`;
    range.setAttribute("aria-valuetext", `${100 - Number(range.value)}% of the second avatar shows`);
  }

  $("[data-compare-range]", compare).addEventListener("input", slide);
  compare.addEventListener("click", (event) => {
    const mode = event.target.closest("[data-compare-mode]");
    if (mode) {
      const slider = mode.dataset.compareMode === "slider";
      $$("[data-compare-mode]", compare).forEach((button) => button.setAttribute("aria-pressed", String(button === mode)));
      $("[data-compare-side]", compare).hidden = slider;
      $("[data-compare-slider]", compare).hidden = !slider;
    }
    if (event.target === compare || event.target.closest("[data-compare-close]")) compare.close();
  });
  compare.addEventListener("close", () => {
    (compareOpener?.isConnected && !compareOpener.closest("[hidden]") ? compareOpener : selectMode).focus();
  });

  // for app.js: new tiles (live progress, uploads) go through the filter and the count
  L.gallery = { add };
  watchMore();
})();

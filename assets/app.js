// Lumiku Local: the little the pages need beyond htmx. Live progress (Server-Sent Events),
// uploads with drag and drop, confirmations, toasts, and errors shown beside what caused them.
"use strict";

(() => {
  const TERMINAL = new Set(["completed", "failed", "canceled"]);
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  // ---------------------------------------------------------------- messages

  // `key` names what the toast is about ("download:<model>"), so dropToasts can take it back
  function toast(message, kind = "success", key = "") {
    const box = $("#toasts");
    if (!box || !message) return;
    const item = document.createElement("div");
    item.className = `toast ${kind}`;
    item.textContent = message;
    if (key) item.dataset.toastKey = key;
    box.append(item);
    setTimeout(() => item.remove(), kind === "error" ? 9000 : 5000);
  }

  function dropToasts(key) {
    $$("#toasts [data-toast-key]").filter((item) => item.dataset.toastKey === key).forEach((item) => item.remove());
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
    toast(event.detail.message, event.detail.kind, event.detail.key);
  });

  // ---------------------------------------------------------------- confirmations

  function confirmDialog(text, okLabel, kind = "danger", title = "Are you sure?") {
    const dialog = $("#confirm");
    if (!dialog?.showModal) return Promise.resolve(window.confirm(text));
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = okLabel || "Delete";
    $("#confirm-ok").className = `button ${kind === "primary" ? "primary" : "danger"}`;  // spending is no deletion
    $("#confirm button[value=cancel]").textContent = kind === "primary" ? "Cancel" : "Keep it";
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
    confirmDialog(element.dataset.confirm, element.dataset.confirmOk, element.dataset.confirmKind).then((ok) => {
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
    box.innerHTML = "<h1 tabindex='-1'>Lumiku has stopped</h1><p>You can close this tab. Start Lumiku again to continue; unfinished generations resume by themselves.</p>";
    main.append(box);
    // nothing answers any more: the header's links and buttons would lead to "connection refused"
    document.body.classList.add("lumiku-stopped");
    $$("body > :not(main):not(#toasts)").forEach((element) => { element.inert = true; });
    document.title = "Lumiku has stopped · Lumiku Local";
    $("h1", box).focus();
  }

  // ---------------------------------------------------------------- the reference photo

  const API = "/api/apps/avatar-creator";
  const MIN_FACE = 16;  // face_box.MIN_SIZE
  const FACE_SOURCES = {
    detected: "Face found: the square marks it. Drag it to adjust.",
    user: "Your square is used.",
    no_face: "No face found: the centre square is used; drag it onto the face.",
    no_detector: "Face detection is not installed in this version: the centre square is used; drag it onto the face.",
  };

  function centreSquare(width, height) {  // face_box.center: two thirds of the short side
    const size = Math.max(Math.floor(Math.min(width, height) * 2 / 3), Math.min(MIN_FACE, width, height));
    return { x: Math.floor((width - size) / 2), y: Math.floor((height - size) / 2), size, source: null };
  }

  // The photo picker of the generate form, and the face square drawn over the chosen photo:
  // dragged, resized or moved with the keyboard, and saved (PATCH) a moment after it stops.
  function setUpReference(form, onChange) {
    const fieldset = $("[data-reference]", form);
    if (!fieldset) return { chosen: () => null, pending: () => false, flush: async () => true };
    const editor = $("[data-face-editor]", fieldset);
    const photo = $("[data-face-photo]", editor);
    const square = $("[data-face-square]", editor);
    const sizeInput = $("[data-face-size]", editor);
    const where = $("[data-face-where]", editor);
    const sourceNote = $("[data-face-source] span", editor);
    let current = null;  // {input, width, height, box}
    let saveTimer = null;
    let saveTarget = null;
    let inFlight = 0;
    let saving = Promise.resolve(true);

    function choose() {
      if (saveTimer) save();  // the square of the photo being left is saved first
      const input = $("input[name=reference]:checked", fieldset);
      if (!input?.value) {
        current = null;
        editor.hidden = true;
        onChange(false);
        return;
      }
      const width = Number(input.dataset.width), height = Number(input.dataset.height);
      const stored = JSON.parse(input.dataset.faceBox || "null");
      current = { input, width, height, box: stored || centreSquare(width, height) };
      photo.width = width;
      photo.height = height;
      if (photo.getAttribute("src") !== input.dataset.imageUrl) photo.src = input.dataset.imageUrl;
      sizeInput.min = String(Math.min(MIN_FACE, width, height));
      sizeInput.max = String(Math.min(width, height));
      editor.hidden = false;
      draw();
      describe();
      onChange(true);
    }

    function draw() {
      const { x, y, size } = current.box;
      square.style.left = `${(x / current.width) * 100}%`;
      square.style.top = `${(y / current.height) * 100}%`;
      square.style.width = `${(size / current.width) * 100}%`;
      square.style.height = `${(size / current.height) * 100}%`;
      sizeInput.value = String(size);
      where.textContent = `${size} × ${size} px at ${x}, ${y}`;
    }

    function describe() {
      const source = current.box.source;
      sourceNote.textContent = FACE_SOURCES[source] || "The centre square is used: drag it onto the face.";
    }

    function setBox(x, y, size) {
      const { width, height } = current;
      size = Math.round(Math.min(Math.max(size, Number(sizeInput.min)), Math.min(width, height)));
      x = Math.round(Math.min(Math.max(x, 0), width - size));
      y = Math.round(Math.min(Math.max(y, 0), height - size));
      const box = current.box;
      if (box.x === x && box.y === y && box.size === size) return;
      current.box = { x, y, size, source: "user" };
      draw();
      describe();
      clearTimeout(saveTimer);
      saveTarget = current;
      saveTimer = setTimeout(save, 400);
    }

    function resizeAroundCentre(size) {
      const { x, y, size: old } = current.box;
      setBox(x + (old - size) / 2, y + (old - size) / 2, size);
    }

    function save() {
      clearTimeout(saveTimer);
      saveTimer = null;
      const target = saveTarget;
      const { x, y, size } = target.box;
      inFlight += 1;
      saving = saving.then(() => patch(target, { x, y, size })).finally(() => { inFlight -= 1; });
      return saving;
    }

    async function patch(target, faceBox) {
      let response;
      try {
        response = await fetch(`${API}/avatars/${encodeURIComponent(target.input.value)}`, {
          method: "PATCH",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ faceBox }),
        });
      } catch (_) {
        showError(fieldset, alertHtml("The face square was not saved: Lumiku is not answering. Is it still running?"));
        return false;
      }
      const text = await response.text();
      if (!response.ok) {
        showError(fieldset, errorHtml(response.status, response.headers.get("content-type") || "", text));
        return false;
      }
      const saved = JSON.parse(text).avatar.faceBox;
      target.input.dataset.faceBox = JSON.stringify(saved);
      return true;
    }

    // pointer: drag the square to move it, its corner handle to resize it
    square.addEventListener("pointerdown", (event) => {
      if (!current || event.button !== 0) return;
      event.preventDefault();
      square.focus();
      square.setPointerCapture(event.pointerId);
      const resizing = event.target.closest("[data-face-handle]") !== null;
      const scale = current.width / photo.getBoundingClientRect().width;  // image px per screen px
      const start = { ...current.box, px: event.clientX, py: event.clientY };
      const move = (moved) => {
        const dx = (moved.clientX - start.px) * scale, dy = (moved.clientY - start.py) * scale;
        if (resizing) setBox(start.x, start.y, start.size + Math.max(dx, dy));
        else setBox(start.x + dx, start.y + dy, start.size);
      };
      const end = () => {
        square.removeEventListener("pointermove", move);
        square.removeEventListener("pointerup", end);
        square.removeEventListener("pointercancel", end);
        if (saveTimer) save();
      };
      square.addEventListener("pointermove", move);
      square.addEventListener("pointerup", end);
      square.addEventListener("pointercancel", end);
    });

    square.addEventListener("wheel", (event) => {
      if (!current) return;
      event.preventDefault();
      const step = Math.max(2, Math.round(Math.min(current.width, current.height) / 40));
      resizeAroundCentre(current.box.size + (event.deltaY < 0 ? step : -step));
    }, { passive: false });

    // keyboard: arrows move (Shift: five times as far), + and - (or Page Up/Down) resize
    square.addEventListener("keydown", (event) => {
      if (!current) return;
      const step = Math.max(1, Math.round(Math.min(current.width, current.height) / 50)) * (event.shiftKey ? 5 : 1);
      const { x, y, size } = current.box;
      const moves = {
        ArrowLeft: () => setBox(x - step, y, size),
        ArrowRight: () => setBox(x + step, y, size),
        ArrowUp: () => setBox(x, y - step, size),
        ArrowDown: () => setBox(x, y + step, size),
        "+": () => resizeAroundCentre(size + step),
        "=": () => resizeAroundCentre(size + step),
        PageUp: () => resizeAroundCentre(size + step),
        "-": () => resizeAroundCentre(size - step),
        PageDown: () => resizeAroundCentre(size - step),
      };
      const action = moves[event.key];
      if (!action) return;
      event.preventDefault();
      action();
    });

    sizeInput.addEventListener("input", (event) => {
      event.stopPropagation();  // the square's size is not a form field
      if (current) resizeAroundCentre(Number(sizeInput.value));
    });
    sizeInput.addEventListener("change", (event) => event.stopPropagation());

    fieldset.addEventListener("change", (event) => {
      if (event.target.name === "reference") choose();
    });

    // a photo uploaded on this page joins the picker
    function add(choices) {
      const list = $("[data-reference-choices]", fieldset);
      const fresh = choices.filter((choice) => !document.getElementById(choice.id));
      if (!fresh.length) return;
      list.firstElementChild.after(...fresh);
      $("[data-no-photos]", fieldset).hidden = true;
    }

    const api = {
      chosen: () => current?.input.value || null,
      pending: () => saveTimer !== null || inFlight > 0,
      flush: () => (saveTimer ? save() : saving),
      add,
    };
    form.referencePicker = api;
    queueMicrotask(choose);
    return api;
  }

  // ---------------------------------------------------------------- the generate form

  function setUpGenerateForm(form) {
    const cost = $("#cost", form);
    const count = $("#count", form);
    const styles = $("[data-styles]", form);
    const size = $("#size", form);
    const likeness = $("[data-likeness]", form);
    const note = $("[data-reference-note]", form);
    const submit = $("button[type=submit]", form);
    let likenessTouched = Boolean(likeness?.hasAttribute("data-likeness-set"));
    let styleTouched = false;
    const negative = $("[data-negative]", form);
    // before update() sees the click ("input" comes before "change"): a chosen style stays
    form.addEventListener("input", (event) => {
      if (event.target.name === "style" && event.isTrusted) styleTouched = true;
    });
    const reference = setUpReference(form, () => update());

    // with a photo, the Instant model needs a style that takes one: switch to one, unless
    // the person chose the style themselves (then the note says why Generate is off)
    function pickPhotoStyle() {
      const model = $("input[name=model]:checked", form);
      const chosen = $("input[name=style]:checked", form);
      if (styleTouched || model?.dataset.referenceMode !== "lookAlike" || !chosen) return;
      if (chosen.closest("label").hasAttribute("data-photo")) return;
      const able = $("label[data-photo] input[name=style]", form);
      if (able) able.checked = true;
    }

    function referenceProblem(model, instant) {
      if (!model) return "";
      if (!model.dataset.referenceMode) {
        const able = $$("input[name=model]", form).filter((m) => m.dataset.referenceMode);
        const ready = able.filter((m) => !m.disabled).map((m) => m.dataset.name);
        const later = able.length - ready.length;
        const which = [
          ready.length ? ` Installed models that can: ${ready.join(", ")}.` : "",
          later ? ` ${later} more can once downloaded (Models page).` : "",
        ].join("");
        return `${model.dataset.name} cannot start from a photo.${which} Or choose “No photo”.`;
      }
      const style = $("input[name=style]:checked", form);
      if (instant && style && !style.closest("label").hasAttribute("data-photo")) {
        return `The ${style.closest("label").dataset.styleLabel || style.value} style cannot use a photo. Choose a style that is not greyed out, or “No photo”.`;
      }
      return "";
    }

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
      if (negative) {  // a diffusion model's field: the Instant model draws no prompt
        const diffusion = ["diffusers", "hf-inference-providers"].includes(model?.dataset.provider);  // local or remote
        negative.hidden = !diffusion;
        $("textarea", negative).disabled = !diffusion;
        $("[data-negative-help]", negative).textContent = model?.dataset.negative === "follows"
          ? `Things ${model.dataset.name} should leave out of the image.`
          : `${model?.dataset.name} draws in a few steps without guidance, so it ignores a negative prompt.`;
      }
      if (model) {
        const min = Number(model.dataset.min), max = Number(model.dataset.max);
        $$("option", size).forEach((option) => {
          const px = Number(option.value);
          option.disabled = px < min || px > max;
        });
        if (size.selectedOptions[0]?.disabled) size.value = model.dataset.size;
      }
      const withPhoto = reference.chosen() !== null;
      if (withPhoto) pickPhotoStyle();
      const chosenStyle = $("input[name=style]:checked", form);
      if (chosenStyle) {
        $("[data-style-name]", form).textContent = chosenStyle.closest("label").dataset.styleLabel || chosenStyle.value;
        $("[data-style-preview]", form).src = $("img", chosenStyle.closest("label")).src;
      }
      form.classList.toggle("with-photo", withPhoto);
      $$("[data-reference-line]", form).forEach((line) => { line.hidden = !withPhoto; });
      const stylesNote = $("[data-photo-styles-note]", form);
      if (stylesNote) stylesNote.hidden = !(withPhoto && instant);
      if (likeness) {
        likeness.disabled = !withPhoto;
        const fallback = Number(model?.dataset.defaultLikeness);
        if (!likenessTouched && model?.dataset.defaultLikeness && Number.isFinite(fallback)) {
          likeness.value = String(Math.round(fallback * 100));
        }
        $("[data-likeness-value]", form).textContent = `${likeness.value}%`;
      }
      const problem = withPhoto ? referenceProblem(model, instant) : "";
      note.hidden = !problem;
      $("span", note).textContent = problem;
      submit.disabled = Boolean(problem);
      const next = $("[data-pose-next]");
      if (next) {
        next.hidden = mode !== "gallery" || boxes.length === 0;
        $("[data-pose-next-text]", next).textContent = `${boxes.length} chosen: on to Generate`;
      }
    };
    likeness?.addEventListener("input", () => { likenessTouched = true; });
    // the face square is saved a moment after it stops moving: a Generate waits for that;
    // and a remote model's first generation says what leaves the computer, once per model
    form.addEventListener("htmx:confirm", (event) => {
      const chosen = $("input[name=model]:checked", form);
      const ask = chosen?.dataset.remote === "ask";
      if (!reference.pending() && !ask) return;
      event.preventDefault();
      const agreed = ask
        ? confirmDialog(chosen.dataset.remoteWords, "Send to Hugging Face", "primary", "Send your prompt to Hugging Face?")
        : Promise.resolve(true);
      agreed
        .then((ok) => {
          if (!ok) return false;
          if (ask) {
            $("[data-remote-consent]", form).value = chosen.value;
            chosen.dataset.remote = "agreed";  // remembered by the server once it is sent
          }
          return reference.pending() ? reference.flush() : true;
        })
        .then((go) => { if (go) event.detail.issueRequest(true); });
    });
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
    document.body.addEventListener("htmx:afterSettle", (event) => {
      if (event.detail.requestConfig?.elt === form && event.detail.target?.id === "generations") showNewCard();
    });
    setUpRecentPrompts(form);
    setUpStyleSearch(form);
    setUpGenerateShortcut(form, submit);
    setUpReuse(form, {
      fill: () => update(),
      touchStyle: () => { styleTouched = true; },
      touchLikeness: () => { likenessTouched = true; },
    });
    update();
  }

  // on a phone the new card starts below the screen: scroll "Generations" and it into view
  function showNewCard() {
    const card = $("#generations [data-generation]");
    if (!card) return;
    const box = card.getBoundingClientRect();
    const header = $(".topbar")?.getBoundingClientRect().bottom || 0;
    if (box.top >= header && box.bottom <= innerHeight) return;  // in view already (desktop)
    const smooth = !matchMedia("(prefers-reduced-motion: reduce)").matches;
    holdScroll();
    ($("#generations-title") || card).scrollIntoView({ block: "start", behavior: smooth ? "smooth" : "auto" });
  }

  // The browser's scroll anchoring follows an element below a card that grows as its images
  // arrive, and so pushes the card's title under the sticky header just after we (or a link)
  // lined it up: held off until the person scrolls or types themselves.
  function holdScroll() {
    const root = document.documentElement;
    root.style.overflowAnchor = "none";
    const release = () => {
      root.style.overflowAnchor = "";
      for (const name of HAND_EVENTS) removeEventListener(name, release);
    };
    for (const name of HAND_EVENTS) addEventListener(name, release, { passive: true });
  }
  const HAND_EVENTS = ["wheel", "touchstart", "keydown"];

  // The project page shows its newest generations; older ones wait behind "Show older"
  // (a long history pushed the gallery thousands of pixels down). New cards push out old ones.
  function setUpGenerationsCap(list, button) {
    const shown = Number(list.dataset.cap);
    list.classList.add("capped");
    const sync = () => {
      const older = $$(":scope > [data-generation]", list).length - shown;
      button.hidden = older <= 0 || !list.classList.contains("capped");
      button.textContent = `Show ${older} older generation${older === 1 ? "" : "s"}`;
    };
    button.addEventListener("click", () => {
      list.classList.remove("capped");
      sync();
      $(`:scope > [data-generation]:nth-child(${shown + 1}) [tabindex='-1']`, list)?.focus();
    });
    new MutationObserver(sync).observe(list, { childList: true });
    sync();
  }

  // anchors and scrolled-to elements land below the sticky header, however tall it wraps
  function trackHeaderHeight() {
    const bar = $(".topbar");
    if (!bar || !window.ResizeObserver) return;
    new ResizeObserver(() => {
      document.documentElement.style.setProperty("--topbar-height", `${bar.offsetHeight}px`);
    }).observe(bar);
    if (location.hash.length > 1) holdScroll();  // a link's target (…#generation-x) stays put
  }

  // a recent prompt, chosen from the menu, goes into the prompt (the arrow keys walk them)
  function setUpRecentPrompts(form) {
    const recent = $("[data-recent-prompts]", form);
    const prompt = $("#prompt", form);
    recent?.addEventListener("change", () => {
      if (recent.value) prompt.value = recent.value;
    });
    // what was just generated is the most recent prompt now
    form.addEventListener("htmx:afterRequest", (event) => {
      if (!recent || !event.detail.successful || event.detail.elt !== form) return;
      const text = prompt.value.trim();
      $$("option", recent).filter((option) => option.value === text).forEach((option) => option.remove());
      recent.firstElementChild.after(new Option(text.length > 70 ? `${text.slice(0, 69)}…` : text, text));
      $$("option", recent).slice(11).forEach((extra) => extra.remove());
      recent.value = "";
    });
  }

  // the style picker's search: by the readable name or the style's key, as one types
  function setUpStyleSearch(form) {
    const search = $("[data-style-search]", form);
    if (!search) return;
    const matches = $("[data-style-matches]", form);
    const labels = $$(".style-choice", form);
    search.addEventListener("input", (event) => {
      event.stopPropagation();  // not a field of the generation
      const words = search.value.trim().toLowerCase().split(/[\s-]+/).filter(Boolean);
      let shown = 0;
      labels.forEach((label) => {
        const name = `${label.dataset.styleLabel} ${$("input", label).value}`.toLowerCase();
        const show = words.every((word) => name.includes(word));
        label.hidden = !show;
        if (show) shown += 1;
      });
      matches.textContent = shown === labels.length ? `${shown} styles`
        : shown ? `${shown} of ${labels.length} styles` : `No style matches “${search.value.trim()}”`;
    });
    search.addEventListener("keydown", (event) => {
      // Enter in the search box picks the only match instead of submitting the form
      if (event.key !== "Enter" || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      const visible = labels.filter((label) => !label.hidden);
      if (visible.length === 1) {
        const input = $("input", visible[0]);
        input.checked = true;
        input.dispatchEvent(new Event("input", { bubbles: true }));
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });
  }

  // Ctrl+Enter (⌘+Enter on a Mac) anywhere in the form generates, once
  function setUpGenerateShortcut(form, submit) {
    const mac = /Mac|iPhone|iPad/.test(navigator.userAgentData?.platform || navigator.platform || "");
    const hint = $("[data-shortcut-hint]", form);
    if (hint && mac) hint.innerHTML = "or press <kbd>⌘</kbd> + <kbd>Enter</kbd>";
    form.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) return;
      event.preventDefault();
      if (submit.disabled || form.classList.contains("htmx-request")) return;  // one at a time
      form.requestSubmit(submit);
    });
  }

  // "Use these settings" on a card of this project fills the form in place; elsewhere (the
  // avatar page, another project's card) the link opens the project page filled by the server
  function setUpReuse(form, hooks) {
    const note = $("[data-reuse-note]", form);
    document.addEventListener("click", async (event) => {
      const link = event.target.closest("a[data-reuse]");
      if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      if (new URL(link.href, location.href).pathname !== location.pathname) return;
      event.preventDefault();
      let settings;
      try {
        const response = await fetch(`${API}/generations/${encodeURIComponent(link.dataset.reuse)}/settings`);
        const text = await response.text();
        if (!response.ok) {
          showError(link, errorHtml(response.status, response.headers.get("content-type") || "", text));
          return;
        }
        settings = JSON.parse(text).settings;
      } catch (_) {
        showError(link, alertHtml("Lumiku is not answering. Is it still running?"));
        return;
      }
      const photo = settings.referenceAvatarId
        && $(`input[name=reference][value="${CSS.escape(settings.referenceAvatarId)}"]`, form);
      if (settings.referenceAvatarId && !photo) { location.assign(link.href); return; }  // not in the picker
      const notes = fillForm(form, settings, photo, hooks);
      $("[data-reuse-text]", note).textContent = note.dataset.words;
      $$("p.small", note).forEach((line) => line.remove());
      notes.forEach((text) => {
        const line = document.createElement("p");
        line.className = "small";
        line.textContent = text;
        $("div", note).append(line);
      });
      note.hidden = false;
      const smooth = !matchMedia("(prefers-reduced-motion: reduce)").matches;
      $("#generate-title").scrollIntoView({ block: "start", behavior: smooth ? "smooth" : "auto" });
      $("#prompt", form).focus({ preventScroll: true });
    });
  }

  function fillForm(form, settings, photo, hooks) {
    const notes = [];
    const set = (selector, value) => { const field = $(selector, form); if (field) field.value = value ?? ""; };
    set("#prompt", settings.prompt);
    const preset = settings.presetId != null && $(`#start-from option[value="preset-${settings.presetId}"]`, form);
    set("#start-from", preset ? preset.value : "");
    set("#negative-prompt", settings.negativePrompt);
    set("#count", settings.count);
    set("#seed", settings.seed);
    const model = $(`input[name=model][value="${CSS.escape(settings.modelKey)}"]`, form);
    if (model && !model.disabled) model.checked = true;
    else notes.push(`${model?.dataset.name || settings.modelKey} is not installed or not enabled, so another model is chosen; download it on the Models page to use it.`);
    const style = settings.style && $(`input[name=style][value="${CSS.escape(settings.style)}"]`, form);
    if (style) { style.checked = true; hooks.touchStyle(); }
    const size = $("#size", form);
    if (settings.size && !$(`option[value="${settings.size}"]`, size)) size.add(new Option(`${settings.size} × ${settings.size}`, String(settings.size)));
    if (settings.size) size.value = String(settings.size);
    const none = $("input[name=reference][value='']", form);
    const chosen = photo || none;
    if (chosen) chosen.checked = true;
    if (settings.photoGone) notes.push("Its photo was deleted since, so the form starts without one.");
    const likeness = $("[data-likeness]", form);
    if (photo && likeness && settings.likeness != null) {
      likeness.value = String(Math.round(settings.likeness * 100));
      hooks.touchLikeness();
    }
    chosen?.dispatchEvent(new Event("change", { bubbles: true }));  // the face square follows
    hooks.fill();
    return notes;
  }

  // ---------------------------------------------------------------- the Pose Generator

  // The library filters as one types (the form still works without scripts, on the server).
  function setUpPoseFilter(form) {
    const grid = $("#pose-grid");
    const category = $("select[name=category]", form);
    const search = $("input[name=q]", form);
    const shown = $("[data-pose-shown]");
    const none = $("[data-no-poses]");
    $$("[data-no-script]", form).forEach((button) => { button.hidden = true; });

    function apply() {
      const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      let count = 0;
      $$(".pose-tile", grid).forEach((tile) => {
        const match = (!category.value || tile.dataset.category === category.value)
          && words.every((word) => tile.dataset.search.includes(word));
        tile.hidden = !match;
        if (match) count += 1;
      });
      if (shown) shown.textContent = String(count);
      if (none) none.hidden = count > 0;
    }

    form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    form.showAll = () => { category.value = ""; search.value = ""; apply(); };
    apply();
  }

  // An imported pose: one already in the library (the same keypoints) is replaced, not doubled;
  // it is shown (the filter cleared) and scrolled to.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target?.id !== "pose-grid" || event.detail.xhr.status >= 400) return;
    const id = /id="pose-([^"]+)"/.exec(event.detail.serverResponse)?.[1];
    if (id) document.getElementById(`pose-${id}`)?.remove();
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.target?.id !== "pose-grid") return;
    const form = event.detail.requestConfig?.elt;
    if (form?.matches?.("[data-pose-import]")) form.reset();
    $("[data-pose-filter]")?.showAll?.();
    const tile = $("#pose-grid > .pose-tile:last-child");
    tile?.scrollIntoView({ block: "nearest" });
    $("#pose-generate")?.dispatchEvent(new Event("change"));
  });

  function setUpPoseForm(form) {
    const maxPoses = Number(form.dataset.maxPoses);
    const limits = { gallery: Number(form.dataset.maxGallery), text: Number(form.dataset.maxText) };
    const variations = $("#variations", form);
    const prompt = $("#pose-prompt", form);
    const cost = $("#pose-cost", form);
    const submit = $("button[type=submit]", form);
    const count = $("[data-chosen-count]", form);
    const chips = $("[data-chosen-list]", form);
    const clear = $("[data-clear-poses]", form);
    // the poses in the order they were chosen: the card groups its images in that order
    let order = $$("input[name=poseIds]:checked").map((box) => box.value);
    const boxOf = (id) => $(`input[name=poseIds][value="${CSS.escape(id)}"]`);
    const chosenBoxes = () => {
      const checked = new Set($$("input[name=poseIds]:checked").map((box) => box.value));
      order = order.filter((id) => checked.has(id)).concat([...checked].filter((id) => !order.includes(id)));
      return order.map(boxOf).filter(Boolean);
    };

    function showChosen(boxes) {
      chips.replaceChildren(...boxes.map((box) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "chip";
        button.dataset.unchoose = box.value;
        button.textContent = box.dataset.poseName;
        button.setAttribute("aria-label", `Remove ${box.dataset.poseName}`);
        button.append(" ", $("template[data-icon-x]", form).content.cloneNode(true));
        item.append(button);
        return item;
      }));
    }

    const update = () => {
      const mode = $("input[name=mode]:checked", form)?.value || "gallery";
      $$("[data-mode]", form).forEach((part) => { part.hidden = part.dataset.mode !== mode; });
      prompt.disabled = mode !== "text";
      prompt.required = mode === "text";
      const max = limits[mode];
      variations.max = String(max);
      if (Number(variations.value) > max) variations.value = String(max);
      $("[data-variations-label]", form).textContent = `${mode === "text" ? "Variations" : "Variations of each pose"} (1–${max})`;
      const boxes = chosenBoxes();
      count.textContent = `${boxes.length} pose${boxes.length === 1 ? "" : "s"} chosen`;
      clear.hidden = boxes.length === 0;
      showChosen(boxes);
      document.querySelectorAll(".pose-grid").forEach((grid) => grid.classList.toggle("browsing", mode === "text"));

      const model = $("input[name=model]:checked", form);
      const each = Math.max(0, Math.min(max, Math.floor(Number(variations.value) || 0)));
      const images = mode === "text" ? each : boxes.length * each;
      const balance = Number($("#balance [data-balance]")?.dataset.balance ?? cost.dataset.balance);
      let problem = "";
      if (!model) problem = "No model that can draw poses is installed.";
      else if (mode === "gallery" && boxes.length === 0) problem = "Choose one or more poses in the library.";
      else if (mode === "gallery" && boxes.length > maxPoses) problem = `Choose at most ${maxPoses} poses at a time (${boxes.length} are chosen).`;
      else if (mode === "text" && !prompt.value.trim()) problem = "Describe the pose in words.";
      else if (each < 1) problem = `Choose 1 to ${max} variations.`;
      if (problem) {
        cost.textContent = problem;
      } else {
        const total = Number(model.dataset.cost) * images;
        const after = balance - total;
        const what = mode === "text" ? `${images} image${images === 1 ? "" : "s"}` : `${boxes.length} × ${each} = ${images} images`;
        cost.textContent = after >= 0
          ? `${what} · costs ${total} credit${total === 1 ? "" : "s"} · balance after: ${after}`
          : `${what} cost ${total} credits, but you have ${balance}. Choose fewer poses or variations.`;
      }
      submit.disabled = Boolean(problem);
      const next = $("[data-pose-next]");
      if (next) {
        next.hidden = mode !== "gallery" || boxes.length === 0;
        $("[data-pose-next-text]", next).textContent = `${boxes.length} chosen: on to Generate`;
      }
    };

    form.addEventListener("input", update);
    form.addEventListener("change", update);
    document.addEventListener("change", (event) => { if (event.target.matches?.("input[name=poseIds]")) update(); });
    form.addEventListener("click", (event) => {
      const chip = event.target.closest("[data-unchoose]");
      if (chip) {
        const box = boxOf(chip.dataset.unchoose);
        if (box) box.checked = false;
        update();
        (chosenBoxes().length ? $("[data-unchoose]", chips) : $("input[name=mode]:checked", form))?.focus();
      }
    });
    clear.addEventListener("click", () => {
      chosenBoxes().forEach((box) => { box.checked = false; });
      update();
      $("input[name=mode]:checked", form)?.focus();
    });
    form.addEventListener("htmx:configRequest", (event) => {
      const ids = chosenBoxes().map((box) => box.value);
      event.detail.formData.delete("poseIds");
      ids.forEach((id) => event.detail.formData.append("poseIds", id));
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
        slot.insertAdjacentHTML("beforeend", alertHtml(`${file.name}: That file is not a PNG, JPEG or WebP image.`));
        return;
      }
      if (file.size > maxBytes) {
        const mb = (n, digits) => (n / 1048576).toFixed(digits);
        slot.insertAdjacentHTML("beforeend", alertHtml(`${file.name}: The file is ${mb(file.size, 1)} MB; the limit is ${mb(maxBytes, 0)} MB.`));
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
    if (window.Lumiku.gallery) {
      window.Lumiku.gallery.add(fresh);  // gallery.js: only those its filter shows; the count
    } else {
      gallery.prepend(...fresh);
      if (fresh.length) $("#no-avatars")?.remove();
      const counter = $("[data-gallery-count]");
      if (counter) counter.textContent = String($$("li.tile", gallery).length);
    }
    const choices = template.content.querySelector("template[data-reference-choices]");
    if (choices) $("#generate")?.referencePicker?.add(Array.from(choices.content.children));
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

  // Not yet, if a request from one of the element's own buttons is on the way: replacing the
  // element would detach the button, htmx fires the answer's toast on it, and no one would hear
  // it. The answer brings a fresh element anyway; `again` runs once it is in (the old element,
  // detached by then, still hears its button's htmx:afterRequest). True when it waits.
  function waitForOwnAnswer(element, again) {
    if (!element?.querySelector(".htmx-request")) return false;
    element.addEventListener("htmx:afterRequest", again, { once: true });
    return true;
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
      if (!waitForOwnAnswer(busy, () => refreshCard(id, withTiles))) {  // its Cancel or Retry
        const html = await fetchHtml(`/ui/generations/${id}/card`);
        const card = document.getElementById(`generation-${id}`);  // looked up after the fetch
        const list = $("#generations");
        if (card) replaceWith(card, html);
        else if (list && (!list.dataset.app || html.includes(`data-app="${list.dataset.app}"`))) {
          // the Pose Generator's page lists its own generations only
          list.insertAdjacentHTML("afterbegin", html);
          htmx.process(list.firstElementChild);
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
      $("#pose-generate")?.dispatchEvent(new Event("change"));
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
    const find = () => $(`[data-model="${CSS.escape(key)}"]`);
    const again = () => refreshModel(key);  // its Download, Cancel or Delete
    let row = find();
    if (!row || waitForOwnAnswer(row, again)) return;
    let html;
    try { html = await fetchHtml(`/ui/models/${encodeURIComponent(key)}/row`); } catch (_) { return; /* next event */ }
    row = find();  // looked up after the fetch, and asked again: a click may have come meanwhile
    if (row && !waitForOwnAnswer(row, again)) replaceWith(row, html);
  }

  // A download that fails at once (offline) can send its event before the Download answer
  // lands, and the answer's "downloading" row would then stay with no error: once it is in
  // place, fetch the row again (and take back "Download started" if it failed meanwhile).
  document.addEventListener("htmx:afterSettle", async (event) => {
    const match = (event.detail.requestConfig?.path || "").match(/^\/ui\/models\/([^/]+)\/download$/);
    if (!match) return;
    const key = decodeURIComponent(match[1]);
    await refreshModel(key);
    const row = $(`[data-model="${CSS.escape(key)}"]`);
    if (row && !$("[data-download-progress]", row) && $("[role=alert]", row)) dropToasts(`download:${key}`);
  });

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
      // "Download started" is no longer true once it failed: the row's error box says why
      if (event.download?.status === "failed") dropToasts(`download:${event.modelKey}`);
      refreshModel(event.modelKey);
    }
  }

  let source = null;
  let lostAt = null;
  let bannerTimer = null;

  function startEvents() {
    if (!window.EventSource) return;
    source = new EventSource("/api/events");
    source.addEventListener("generation", (message) => {
      const event = JSON.parse(message.data);
      onGeneration(event);
      // for page scripts (queue.js): every generation event, whatever the page shows
      document.dispatchEvent(new CustomEvent("lumiku:generation", { detail: event }));
    });
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
      document.dispatchEvent(new Event("lumiku:events-open"));  // caught up: page scripts too
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
    trackHeaderHeight();
    const form = $("#generate");
    if (form) setUpGenerateForm(form);
    const older = $("[data-show-older]");
    if (older) setUpGenerationsCap($("#generations"), older);
    const filter = $("[data-pose-filter]");
    if (filter) setUpPoseFilter(filter);
    const poseForm = $("#pose-generate");
    if (poseForm) setUpPoseForm(poseForm);
    const zone = $("[data-upload]");
    if (zone) setUpUpload(zone);
    startEvents();
    setInterval(checkAges, 10000);
    window.addEventListener("pagehide", stopEvents);
    document.documentElement.dataset.ready = String(Math.round(performance.now()));  // bench/ui.py
  }

  // for the page scripts beside this one (gallery.js): the messages, dialogs and tiles they share
  window.Lumiku = { toast, alertHtml, errorHtml, showError, confirmDialog, addTiles, fetchHtml };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

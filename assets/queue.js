// The queue page: keeps the running and waiting lists true as generation events arrive. A
// progress step moves the bar in place; anything else (a job starts, finishes, joins the line)
// fetches the lists again, since every waiting job's position may have changed.
"use strict";

(() => {
  const TERMINAL = new Set(["completed", "failed", "canceled"]);
  const live = () => document.getElementById("queue-live");
  let fetching = false;
  let again = false;

  function busy() {
    return live()?.querySelector(".htmx-request") !== null;
  }

  async function refresh() {
    const current = live();
    if (!current) return;
    if (fetching || busy()) {
      again = true;  // after this fetch, or after the Cancel on its way (see htmx:afterRequest)
      return;
    }
    fetching = true;
    try {
      swap(await window.Lumiku.fetchHtml("/ui/queue/live"));
    } catch (_) { /* the next event or reconnect fetches it again */ }
    fetching = false;
    if (again && !busy()) {
      again = false;
      refresh();
    }
  }

  function swap(html) {
    const current = live();
    const template = document.createElement("template");
    template.innerHTML = html;
    const fresh = template.content.querySelector("#queue-live");
    if (!current || !fresh || busy()) return;
    const focused = current.contains(document.activeElement) ? document.activeElement : null;
    current.replaceWith(fresh);
    htmx.process(fresh);
    if (focused) refocus(fresh, focused);
  }

  // The focus stays on the same button when it is still there, else goes to its list's heading.
  function refocus(root, was) {
    const key = was.dataset.focusKey;
    const same = key && root.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    const section = was.closest("section")?.getAttribute("aria-labelledby");
    const heading = section && document.getElementById(section);
    (same || heading || root.querySelector("h2"))?.focus();
  }

  async function refreshBalance() {
    const balance = document.getElementById("balance");
    if (!balance) return;
    try {
      const template = document.createElement("template");
      template.innerHTML = (await window.Lumiku.fetchHtml("/ui/balance")).trim();
      const fresh = template.content.firstElementChild;
      if (fresh) balance.replaceWith(fresh);
    } catch (_) { /* shown again on the next change */ }
  }

  document.addEventListener("lumiku:generation", (message) => {
    const event = message.detail;
    const item = document.getElementById(`queue-${event.id}`);
    const moved = !item || item.dataset.status !== event.status || item.dataset.completed !== String(event.countCompleted);
    if (item && !moved) {
      const percent = Math.round(event.progress);
      const bar = item.querySelector("[role=progressbar]");
      if (bar) {
        bar.querySelector(".progress-bar").style.width = `${event.progress}%`;
        bar.setAttribute("aria-valuenow", String(percent));
        item.querySelector("[data-step-count]").textContent = `${event.countCompleted} of ${event.countRequested} images · ${percent}%`;
      }
      return;
    }
    if (!item && TERMINAL.has(event.status)) return;  // not in the lists: nothing changes
    if (item && TERMINAL.has(event.status)) refreshBalance();  // a refund, perhaps
    refresh();
  });

  document.addEventListener("lumiku:events-open", refresh);

  document.addEventListener("htmx:afterRequest", (event) => {
    if (again) {
      again = false;
      refresh();
    }
  });

  // after a Cancel's answer is swapped in: the focus goes back where it was, not to the top
  let cancelKey = null;
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt.closest?.("#queue-live")) cancelKey = event.detail.elt.dataset.focusKey || null;
  });
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.target?.id !== "queue-live" || !cancelKey) return;
    const root = live();
    const same = root?.querySelector(`[data-focus-key="${CSS.escape(cancelKey)}"]`);
    const next = root?.querySelector("[data-focus-key^='cancel-']");
    (same || next || root?.querySelector("h2"))?.focus();
    cancelKey = null;
  });
})();

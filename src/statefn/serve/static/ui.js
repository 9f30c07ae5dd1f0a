// statefn serve: progressive enhancement of server-rendered pages. Every page works
// without this file; with it, pages follow runs live (server-sent events) and answer keys.
//
// Live updates: an element with data-live="URL" opens an EventSource on URL.
//   event "log"     data = one log line as JSON; appended to the table data-log-table,
//                   always through textContent (job output is data, never markup)
//   event "refresh" the page changed: fetch it again and swap every [data-swap] element
//   event "end"     nothing more will change: close the stream
// Keys: "/" focuses the filter, j/k move through [data-nav] items, Enter opens the
// selected one, "g w" and "g r" go to workflows and runs, Escape leaves a field,
// Ctrl+Enter submits the form being typed in. A select[data-submit] submits its form.
"use strict";

(function () {
  function openDetails(root) {
    const open = new Set();
    root.querySelectorAll("details[open][data-id]").forEach((d) => open.add(d.dataset.id));
    return open;
  }

  async function refresh() {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const selected = document.querySelector("[data-nav].selected");
    const selectedHref = selected ? selected.dataset.href : null;
    document.querySelectorAll("[data-swap]").forEach((old) => {
      const fresh = page.querySelector('[data-swap="' + old.dataset.swap + '"]');
      if (!fresh) return;
      const open = openDetails(old);
      fresh.querySelectorAll("details[data-id]").forEach((d) => {
        if (open.has(d.dataset.id)) d.open = true;
      });
      old.replaceWith(document.adoptNode(fresh));
    });
    if (selectedHref !== null) {
      const again = document.querySelector('[data-nav][data-href="' + CSS.escape(selectedHref) + '"]');
      if (again) again.classList.add("selected");
    }
  }

  function appendLog(line) {
    const table = document.querySelector("[data-log-table]:not([data-log-full]) tbody");
    if (!table) return;
    const row = document.createElement("tr");
    row.className = "level-" + line.level;
    const focus = document.body.dataset.step;
    if (focus && line.step_id !== focus) row.classList.add("other-step");
    for (const [cls, text] of [
      ["mono", (line.time || "").slice(11, 23)],
      ["lvl", line.level],
      ["mono", line.step_id || ""],
      ["msg", line.message],
    ]) {
      const cell = document.createElement("td");
      cell.className = cls;
      cell.textContent = text;
      row.appendChild(cell);
    }
    table.appendChild(row);
    const empty = document.querySelector("[data-log-empty]");
    if (empty) empty.remove();
  }

  function follow(element) {
    const source = new EventSource(element.dataset.live);
    let pending = null;
    element.setAttribute("data-live-on", "");
    source.addEventListener("log", (event) => appendLog(JSON.parse(event.data)));
    source.addEventListener("refresh", () => {
      // Several changes in a burst become one fetch of the page.
      if (pending === null) {
        pending = setTimeout(() => {
          pending = null;
          refresh();
        }, 150);
      }
    });
    source.addEventListener("end", () => {
      source.close();
      element.removeAttribute("data-live-on");
      refresh();
    });
  }

  function navItems() {
    return Array.from(document.querySelectorAll("[data-nav]"));
  }

  function move(by) {
    const items = navItems();
    if (!items.length) return;
    const current = items.findIndex((item) => item.classList.contains("selected"));
    const next = Math.min(items.length - 1, Math.max(0, current < 0 ? 0 : current + by));
    items.forEach((item) => item.classList.remove("selected"));
    items[next].classList.add("selected");
    items[next].scrollIntoView({ block: "nearest" });
  }

  function openSelected() {
    const item = document.querySelector("[data-nav].selected");
    const link = item && (item.dataset.href || (item.querySelector("a[href]") || {}).href);
    if (link) window.location.href = link;
    return Boolean(link);
  }

  let pendingG = false;
  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      if (event.key === "Enter" && event.target.form && event.target.tagName === "TEXTAREA") {
        event.preventDefault();
        event.target.form.requestSubmit();
      }
      return;
    }
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (pendingG) {
      pendingG = false;
      const target = { w: "[data-go=workflows]", r: "[data-go=runs]" }[event.key];
      const link = target && document.querySelector(target);
      if (link) window.location.href = link.href;
      return;
    }
    const actions = {
      "/": () => {
        const filter = document.querySelector("[data-filter]");
        if (filter) filter.focus();
        return Boolean(filter);
      },
      j: () => (move(1), true),
      k: () => (move(-1), true),
      Enter: openSelected,
      g: () => ((pendingG = true), true),
    };
    const action = actions[event.key];
    if (action && action()) event.preventDefault();
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live]").forEach(follow);
    document.querySelectorAll("select[data-submit]").forEach((select) => {
      select.addEventListener("change", () => select.form.requestSubmit());
    });
    document.querySelectorAll("[data-nav]").forEach((item) => {
      item.addEventListener("click", (event) => {
        if (event.target.closest("a, button, summary, details")) return;
        navItems().forEach((other) => other.classList.remove("selected"));
        item.classList.add("selected");
      });
    });
  });
})();

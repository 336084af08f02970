/* Review pages: one key per action, fetch() posts with the CSRF token, and the next pair preloaded so
   review never waits. Plain JavaScript, no dependencies (users run this behind firewalls: nothing from a CDN).
   Without JavaScript every action is still an ordinary form post. */
(function () {
  "use strict";

  const PRELOAD_MAX_AGE_MS = 60000; // an older preloaded page is fetched again rather than shown
  const SCORE_DELAY_MS = 200; // pause in typing before an edit is re-scored
  const KEY_ALIASES = { j: "n", ArrowRight: "n", ArrowLeft: "p" };
  const preloaded = new Map(); // absolute url → { at, html: Promise<string | null> }
  let lastWriteAt = 0; // when the user's last action was sent (preloads from before it may be stale)

  const absolute = (url) => new URL(url, window.location.href).href;
  const reviewMain = () => document.querySelector("main[data-review]");

  function csrfToken(form) {
    const input = (form && form.querySelector("input[name=csrfmiddlewaretoken]"))
      || document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function toast(text) {
    const box = document.querySelector("[data-toast]");
    if (!box) { window.alert(text); return; }
    box.textContent = text;
    box.hidden = false;
    window.clearTimeout(toast.timer);
    toast.timer = window.setTimeout(() => { box.hidden = true; }, 5000);
  }

  // --- preloading and page swaps -------------------------------------------------------------------

  function preload(url) {
    if (!url) return;
    const key = absolute(url);
    if (preloaded.has(key)) return;
    const html = fetch(key, { credentials: "same-origin" })
      .then((response) => (response.ok && !response.redirected ? response.text() : null))
      .catch(() => null);
    preloaded.set(key, { at: Date.now(), html });
  }

  // The parts of a pair's page that depend on what the user did, not on the pair: the undo button (their
  // last change), the previous link, the latest changes.
  const PERSONAL_PARTS = ['form[data-key="u"]', "nav.pager", "section.events"];

  // A page preloaded before the user's last write is stale in its personal parts: its undo button would
  // undo the change before the last one. Drop that button at once (so `u` cannot undo the wrong change),
  // then put in the fresh parts from a new copy of the page.
  async function refreshPersonalParts(key) {
    const main = reviewMain();
    if (!main) return;
    const pairId = main.dataset.pairId;
    main.querySelectorAll(PERSONAL_PARTS[0]).forEach((form) => form.remove());
    main.dataset.refreshing = "1";
    try {
      const response = await fetch(key, { credentials: "same-origin" });
      const html = response.ok && !response.redirected ? await response.text() : null;
      const now = reviewMain();
      const fresh = html && new DOMParser().parseFromString(html, "text/html").querySelector("main[data-review]");
      if (!fresh || now !== main || fresh.dataset.pairId !== pairId) return; // the user moved on
      main.dataset.previousUrl = fresh.dataset.previousUrl || "";
      const undo = fresh.querySelector(PERSONAL_PARTS[0]);
      const actions = main.querySelector(".review-actions");
      if (undo && actions) actions.append(document.importNode(undo, true));
      PERSONAL_PARTS.slice(1).forEach((selector) => {
        const mine = main.querySelector(selector);
        const theirs = fresh.querySelector(selector);
        if (mine && theirs) mine.replaceWith(document.importNode(theirs, true));
      });
    } catch (error) {
      // keep the page as it is; a reload shows the fresh parts
    } finally {
      delete main.dataset.refreshing;
    }
  }

  async function show(url, { push = true, afterWrite = false } = {}) {
    const key = absolute(url);
    const entry = preloaded.get(key);
    preloaded.delete(key);
    const html = entry && Date.now() - entry.at < PRELOAD_MAX_AGE_MS ? await entry.html : null;
    const page = html ? new DOMParser().parseFromString(html, "text/html") : null;
    const main = page && page.querySelector("main[data-review]");
    if (!main) { window.location.assign(key); return; }
    document.querySelector("main").replaceWith(document.importNode(main, true));
    document.querySelectorAll(".messages").forEach((list) => list.remove());
    document.title = page.title;
    if (push) window.history.pushState({ review: true }, "", key);
    window.scrollTo(0, 0);
    start();
    if (afterWrite && entry.at < lastWriteAt) refreshPersonalParts(key);
  }

  function navigate(url) {
    if (preloaded.has(absolute(url))) show(url);
    else window.location.assign(url);
  }

  // --- actions ------------------------------------------------------------------------------------

  function showConflict(html) {
    const main = reviewMain();
    const old = main.querySelector("#conflict");
    if (old) old.remove();
    main.insertAdjacentHTML("afterbegin", html); // rendered and escaped by the server
    main.querySelector("#conflict").scrollIntoView({ behavior: "smooth" });
  }

  async function submit(form) {
    if (form.dataset.busy) return;
    form.dataset.busy = "1";
    form.classList.add("busy");
    lastWriteAt = Date.now();
    try {
      const response = await fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken(form) },
      });
      if (response.redirected) { window.location.assign(response.url); return; } // logged out: the login page
      const data = await response.json().catch(() => null);
      if (response.status === 409 && data && data.conflict_html) { showConflict(data.conflict_html); return; }
      if (!response.ok || !data) {
        toast((data && data.error) || `Not done: ${response.status} ${response.statusText}`);
        return;
      }
      if (data.stay) { preloaded.delete(absolute(data.next_url)); preload(data.next_url); }
      await show(data.next_url, { afterWrite: true });
    } catch (error) {
      toast(`Not done: ${error}`);
    } finally {
      delete form.dataset.busy;
      form.classList.remove("busy");
    }
  }

  // --- the editor: the checker re-scores the edit as it is typed ----------------------------------

  function startEditor(main) {
    const form = main.querySelector("form[data-editor]");
    if (!form) return;
    const textarea = form.querySelector("textarea[name=chosen]");
    const preview = form.querySelector("[data-edit-preview]");
    let timer = null;
    let sequence = 0;
    const score = async () => {
      const mine = ++sequence;
      const body = new FormData();
      body.append("chosen", textarea.value);
      try {
        const response = await fetch(form.dataset.scoreUrl, {
          method: "POST", body, credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken(form) },
        });
        const data = await response.json().catch(() => null);
        if (mine !== sequence) return; // a later keystroke's answer is on its way
        if (data && typeof data.html === "string") preview.innerHTML = data.html; // server-escaped
        else preview.textContent = (data && data.error) || `Could not score: ${response.status}`;
      } catch (error) {
        preview.textContent = `Could not score: ${error}`;
      }
    };
    textarea.addEventListener("input", () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(score, SCORE_DELAY_MS);
    });
    form.score = score;
  }

  function openBox(form) {
    const box = form.closest("details");
    if (box) box.open = true;
    const field = form.querySelector("textarea, input[type=text]");
    if (field) { field.focus(); if (field.setSelectionRange) field.setSelectionRange(field.value.length, field.value.length); }
    if (form.score) form.score();
  }

  function closeBoxes(main) {
    main.querySelectorAll("details[data-editor-box], details[data-flag-box]").forEach((box) => { box.open = false; });
  }

  function toggleHelp() {
    const dialog = document.getElementById("keys");
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  // --- keyboard ------------------------------------------------------------------------------------

  function onKey(event) {
    const main = reviewMain();
    if (!main) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) {
        event.preventDefault();
        target.form.requestSubmit();
      } else if (event.key === "Escape") {
        closeBoxes(main);
        target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (event.key === "Escape") { closeBoxes(main); return; }
    const key = KEY_ALIASES[event.key] || event.key;
    const element = main.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!element) return;
    event.preventDefault();
    if (element.tagName === "A") { navigate(element.href); return; }
    if (element.querySelector("textarea, input[type=text]")) { openBox(element); return; } // edit, flag: type first
    element.requestSubmit();
  }

  // --- wiring ---------------------------------------------------------------------------------------

  function start() {
    const main = reviewMain();
    if (!main) return;
    startEditor(main);
    preload(main.dataset.preloadUrl); // the pair the queue will most likely give next
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("main[data-review] form[data-review-form]")) return;
    event.preventDefault();
    submit(form);
  });
  document.addEventListener("click", (event) => {
    const help = event.target.closest("[data-help]");
    if (help) { toggleHelp(); return; }
    const toggle = event.target.closest("[data-tree-toggle]");
    if (toggle) {
      const open = toggle.dataset.treeToggle === "open";
      document.querySelectorAll("#tree details").forEach((details) => { details.open = open; });
    }
  });
  document.addEventListener("change", (event) => { // bulk view: select every selectable row of the page
    if (!event.target.matches("[data-select-all]")) return;
    event.target.closest("table").querySelectorAll("tbody input[name=pair]:not(:disabled)")
      .forEach((box) => { box.checked = event.target.checked; });
  });
  document.addEventListener("toggle", (event) => { // opening the editor by mouse scores it too
    const form = event.target.matches && event.target.matches("details[data-editor-box]") && event.target.open
      ? event.target.querySelector("form[data-editor]") : null;
    if (form && form.score) form.score();
  }, true);
  window.addEventListener("popstate", () => window.location.reload());
  start();
})();

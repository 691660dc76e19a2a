/* dalle-queue: what every page shares.
 *
 * - DQ.api(): fetch the JSON API (shared/API.md) with the CSRF header that writes need when they
 *   carry our session cookie (server/auth.py), and an Idempotency-Key on every POST so that a
 *   submit or rerun resent on a flaky link queues once (server/idempotency.py). A caller that
 *   retries passes its first key in options.headers.
 * - DQ.poll(): light polling that survives a phone going to sleep. Timers are throttled or frozen
 *   while a page is hidden, so instead of trusting them we poll every INTERVAL while visible,
 *   slow right down while hidden, back off after errors, and poll at once when the page becomes
 *   visible again or the network comes back ("visibilitychange", "online").
 * - DQ.fill(): put a job object into the [data-field] elements the templates render (the same
 *   rules as templates/_status.html and _job_row.html).
 * - DQ.showLatest(): put the newest of a stream of images (live previews) into an <img> without
 *   stacking fetches on a slow link: each is loaded off-screen and swapped in once loaded, and
 *   while one loads a newer one waits in its place (one pending at most) instead of being fetched.
 * - DQ.finished(): tell the person a job ended: the tab title always, a notification when they
 *   allowed it and are looking elsewhere. Permission is asked on a submit (a user gesture).
 * - Prompt drafts are kept in localStorage so nothing typed is lost to an expired form or a
 *   killed tab.
 */
"use strict";

const DQ = (() => {
  const INTERVAL_MS = 2000;
  const HIDDEN_INTERVAL_MS = 60000;
  const MAX_BACKOFF_MS = 30000;
  const ASK_TIMEOUT_MS = 10000;
  const DRAFT_KEY = "dalleq.draft";
  const STATUS_TEXT = {
    queued: "Queued", running: "Running", done: "Done", failed: "Failed", canceled: "Canceled",
  };

  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
  const root = meta("root");

  function jobUrl(id) {
    return `${root}/jobs/${encodeURIComponent(id)}`;
  }

  function isActive(job) {
    return job.status === "queued" || job.status === "running";
  }

  /* A fresh Idempotency-Key: 128 random bits as hex (crypto.randomUUID needs HTTPS; this does not). */
  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    const method = (options.method || "GET").toUpperCase();
    if (method !== "GET") headers["X-CSRF-Token"] = meta("csrf-token");
    if (method === "POST" && !headers["Idempotency-Key"]) headers["Idempotency-Key"] = newKey();
    const response = await fetch(root + path, {
      ...options, method, headers, credentials: "same-origin",
    });
    if (!response.ok) {
      // The session ended (logged out in another tab, expired): static/session.js says so.
      if (response.status === 401) document.dispatchEvent(new CustomEvent("dq:session-ended"));
      const error = new Error(`${method} ${path}: ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.status === 204 ? null : response.json();
  }

  /* Run `task` now and then every INTERVAL_MS while visible. `task` returns false to stop. */
  function poll(task) {
    let timer = null;
    let running = false;
    let stopped = false;
    let failures = 0;

    function schedule() {
      clearTimeout(timer);
      if (stopped) return;
      let delay = document.hidden ? HIDDEN_INTERVAL_MS : INTERVAL_MS;
      if (failures) delay = Math.min(MAX_BACKOFF_MS, INTERVAL_MS * 2 ** failures);
      timer = setTimeout(run, delay);
    }

    async function run() {
      if (stopped || running) return;
      running = true;
      try {
        if ((await task()) === false) stopped = true;
        failures = 0;
      } catch (error) {
        failures = Math.min(failures + 1, 8);
      } finally {
        running = false;
        schedule();
      }
    }

    const wake = () => { if (!document.hidden) { failures = 0; run(); } };
    document.addEventListener("visibilitychange", wake);
    window.addEventListener("online", wake);
    window.addEventListener("pageshow", (event) => { if (event.persisted) wake(); });
    run();
    return { now: run, stop() { stopped = true; clearTimeout(timer); } };
  }

  // <img> -> {shown, loading, pending}: the URL on screen, the one being fetched, the next one.
  const latestImages = new WeakMap();

  function showLatest(img, url) {
    let state = latestImages.get(img);
    if (!state) {
      state = { shown: img.hidden ? null : img.getAttribute("src"), loading: null, pending: null };
      latestImages.set(img, state);
    }
    if (url === state.shown || url === state.loading) return;
    if (state.loading) {
      state.pending = url; // replaces any older pending one: it was never fetched
      return;
    }
    state.loading = url;
    const offscreen = new Image();
    const settle = (isLoaded) => {
      if (isLoaded && latestImages.get(img) === state) {
        img.src = url;
        img.hidden = false;
        state.shown = url;
      }
      state.loading = null;
      const next = state.pending;
      state.pending = null;
      if (next) showLatest(img, next);
    };
    offscreen.onload = () => settle(true);
    offscreen.onerror = () => settle(false); // the job ended meanwhile: its preview is gone
    offscreen.src = url;
  }

  /* Stop showing previews in `img`; a fetch still on its way is not swapped in. */
  function clearLatest(img) {
    latestImages.delete(img);
    img.hidden = true;
    img.removeAttribute("src");
  }

  function percent(job) {
    return `${Math.round(job.progress * 100)}%`;
  }

  function fill(element, job) {
    const running = job.status === "running";
    for (const node of element.querySelectorAll("[data-field]")) {
      switch (node.dataset.field) {
        case "link": node.href = jobUrl(job.id); break;
        case "prompt": node.textContent = job.prompt; break;
        case "status":
          node.textContent = STATUS_TEXT[job.status] || job.status;
          node.dataset.status = job.status;
          break;
        case "position":
          node.textContent = job.position ? `#${job.position} in line` : "";
          node.hidden = !job.position;
          break;
        case "progress":
          node.value = job.progress;
          node.textContent = percent(job);
          node.hidden = !running;
          break;
        case "percent": node.textContent = percent(job); node.hidden = !running; break;
        case "error":
          node.textContent = job.error || "";
          node.hidden = !job.error || job.status === "done";
          break;
        case "thumb":
          if (job.thumb_url) {
            node.loading = "lazy";
            node.src = job.thumb_url;
          }
          if ("altPrompt" in node.dataset) node.alt = job.prompt;
          node.hidden = !job.thumb_url;
          break;
        case "preview":
          if (job.preview_url && running) showLatest(node, job.preview_url);
          else if (!node.hidden || latestImages.has(node)) clearLatest(node);
          break;
        case "cancel":
          node.action = `${jobUrl(job.id)}/cancel`;
          node.hidden = !isActive(job);
          break;
        case "star": // templates/_star.html; static/stars.js sends it
          node.action = `${jobUrl(job.id)}/star`;
          node.dataset.jobId = job.id;
          showStar(node, job.starred);
          break;
      }
    }
    for (const filler of fillers) filler(element, job);
    return element;
  }

  /* Show a star form (templates/_star.html) as starred or not; its form then asks the opposite. */
  function showStar(form, isStarred) {
    form.elements.starred.value = isStarred ? "false" : "true";
    const button = form.querySelector("button");
    button.setAttribute("aria-pressed", String(isStarred));
    button.textContent = isStarred ? "★" : "☆";
  }

  /* Page-specific fields kept in their own files: filler(element, job) runs after each fill(). */
  const fillers = [];
  function onFill(filler) {
    fillers.push(filler);
  }

  /* A fresh copy of a <template>'s first element, filled with `job`. */
  function fromTemplate(id, job) {
    const template = document.getElementById(id);
    return fill(template.content.firstElementChild.cloneNode(true), job);
  }

  async function showNotification(title, options) {
    const registration = await navigator.serviceWorker?.getRegistration();
    if (registration) return registration.showNotification(title, options);
    return new Notification(title, options); // desktop browsers; Android needs the worker above
  }

  function finished(job) {
    const word = { done: "✓ done", failed: "✗ failed", canceled: "canceled" }[job.status];
    if (!word) return;
    document.title = `${word} · ${job.prompt.slice(0, 40)}`;
    const allowed = "Notification" in window && Notification.permission === "granted";
    if (!allowed || !document.hidden || job.status === "canceled") return;
    const options = {
      body: job.prompt,
      tag: job.id,
      icon: `${root}/static/icon-192.png`,
      data: { url: jobUrl(job.id) },
    };
    showNotification(`dalle-queue: ${word}`, options).catch(() => {});
  }

  /* Ask for notification permission during a submit, then send the form either way. */
  function askOnSubmit(event) {
    const form = event.target;
    if (!form.matches?.("form[data-ask-notify]")) return;
    if (form.dataset.sending) { // a second tap while the first is on its way: one job, not two
      event.preventDefault();
      return;
    }
    form.dataset.sending = "true";
    form.querySelector("[type=submit]")?.setAttribute("aria-busy", "true");
    const canAsk = "Notification" in window && window.isSecureContext
      && Notification.permission === "default";
    if (!canAsk) return;
    event.preventDefault();
    const timeout = new Promise((resolve) => setTimeout(resolve, ASK_TIMEOUT_MS));
    let sent = false;
    const send = () => { if (!sent) { sent = true; form.submit(); } };
    Promise.race([Notification.requestPermission(), timeout]).then(send, send);
  }

  function keepDrafts() {
    const box = document.querySelector("textarea[data-draft]");
    if (!box) return;
    try {
      if (document.querySelector('.flash[data-kind="queued"]')) localStorage.removeItem(DRAFT_KEY);
      else if (!box.value) box.value = localStorage.getItem(DRAFT_KEY) || "";
      box.addEventListener("input", () => localStorage.setItem(DRAFT_KEY, box.value));
    } catch (error) {
      // storage refused (private browsing): the server still keeps prompts on validation errors
    }
  }

  function localTimes() {
    for (const node of document.querySelectorAll("time[datetime]")) {
      const moment = new Date(node.dateTime);
      if (!Number.isNaN(moment.getTime())) node.textContent = moment.toLocaleString();
    }
  }

  document.addEventListener("submit", askOnSubmit);
  window.addEventListener("pageshow", () => { // back to a page the browser kept: forms work again
    for (const form of document.querySelectorAll("form[data-sending]")) {
      delete form.dataset.sending;
      form.querySelector("[aria-busy]")?.removeAttribute("aria-busy");
    }
  });
  document.addEventListener("DOMContentLoaded", () => {
    keepDrafts();
    localTimes();
    if ("serviceWorker" in navigator && window.isSecureContext) {
      navigator.serviceWorker.register(`${root}/sw.js`).catch(() => {});
    }
  });

  return {
    api, newKey, poll, fill, onFill, fromTemplate, finished, isActive, jobUrl, root, showLatest,
    showStar,
  };
})();

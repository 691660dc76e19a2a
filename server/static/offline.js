/* dalle-queue: the queue form keeps ideas on the phone when the server cannot be reached.
 *
 * The form stays a plain HTML form (it works without JavaScript, and every answer the server
 * gives, an error included, is shown as it renders it). With JavaScript, a submit first asks the
 * server a tiny question (HEAD of the manifest, never cached): answered, the form is sent as
 * usual; not answered (offline, in a tunnel, the tailnet down), the prompt and its knobs are
 * kept in IndexedDB (static/ideas.js) with an Idempotency-Key made now, listed as "waiting to
 * send", and sent through the API when the server answers again: on the next load, on the
 * window's "online" event, and by the service worker's Background Sync where the browser has
 * it (sw.js). The key makes every resend of one idea land on one job.
 */
"use strict";

(() => {
  const form = document.querySelector("form[data-save-offline]");
  const section = document.getElementById("waiting");
  if (!form || !section || !("indexedDB" in window)) return;

  const SYNC_TAG = "dalleq-ideas";
  const PROBE_TIMEOUT_MS = 8000;
  const FORM_ONLY_FIELDS = new Set(["csrf_token", "idempotency_key", "next"]);
  const list = document.getElementById("waiting-list");
  const note = section.querySelector("[data-waiting-note]");
  const loginLink = section.querySelector("[data-waiting-login]");
  const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  let isChecking = false;
  let sending = null;

  function say(message, { needsLogin = false } = {}) {
    note.textContent = message;
    note.hidden = !message;
    loginLink.hidden = !needsLogin;
  }

  /* Whether the server answers at all; any answer counts (a 401 or 500 is the form's business). */
  async function serverAnswers() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
    try {
      await fetch(`${DQ.root}/manifest.webmanifest`, {
        method: "HEAD", cache: "no-store", credentials: "same-origin", signal: controller.signal,
      });
      return true;
    } catch (error) {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  function problemText(problem) {
    if (!problem) return "";
    if (problem.isRefused) return `Not sent: ${problem.message}`;
    if (problem.status === 401) return "Not sent yet: log in again to send it.";
    return `Not sent yet: ${problem.message}`;
  }

  function rowFor(idea) {
    const row = document.createElement("li");
    row.className = "waiting-idea";
    row.dataset.key = idea.key;
    const prompt = document.createElement("span");
    prompt.className = "waiting-prompt";
    prompt.textContent = idea.prompt;
    const state = document.createElement("span");
    state.className = "waiting-state";
    state.textContent = problemText(idea.problem) || "Waiting to send";
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "button";
    discard.textContent = "Discard";
    discard.setAttribute("aria-label", `Discard “${idea.prompt}”`);
    discard.dataset.discard = idea.key;
    row.append(prompt, state, discard);
    return row;
  }

  async function render() {
    const ideas = await DQIdeas.all();
    list.replaceChildren(...ideas.map(rowFor));
    section.hidden = ideas.length === 0 && note.hidden;
  }

  function requestSync() {
    navigator.serviceWorker?.ready
      .then((registration) => registration.sync?.register(SYNC_TAG))
      .catch(() => {}); // no Background Sync: the next load or "online" sends instead
  }

  /* Send what waits (one run at a time on this page), then show what is left. */
  function sendWaiting() {
    sending ??= (async () => {
      try {
        const result = await DQIdeas.sendAll({ root: DQ.root, csrfToken: csrfToken() });
        if (result.problem?.status === 401) {
          say("Your session has ended: log in to send the ideas waiting here.", { needsLogin: true });
        } else if (result.sentCount) {
          const count = result.sentCount;
          say(`Sent ${count} waiting ${count === 1 ? "idea" : "ideas"} to the queue.`);
          document.dispatchEvent(new Event("dq:queued"));
        }
        return result;
      } finally {
        sending = null;
        await render();
      }
    })();
    return sending;
  }

  /* Keep trying while ideas wait. A server that stops answering (the tailnet down) fires no
   * "online" event, so the page retries on DQ.poll's timer, backing off while unreachable; it
   * stops once nothing can go (all sent, refused, or the session is over). */
  let retries = null;
  function keepSending() {
    if (retries) {
      retries.now();
      return;
    }
    retries = DQ.poll(async () => {
      const { isOffline, problem } = await sendWaiting();
      if (isOffline) throw new Error("the server cannot be reached yet"); // DQ.poll backs off
      const ideas = await DQIdeas.all();
      if (problem || !ideas.some((idea) => !idea.problem?.isRefused)) {
        retries = null;
        return false;
      }
      return true;
    });
  }

  async function keep() {
    const fields = Object.fromEntries(
      [...new FormData(form)].filter(([name]) => !FORM_ONLY_FIELDS.has(name)),
    );
    const idea = DQIdeas.make(fields, { key: DQ.newKey(), csrfToken: csrfToken(), now: Date.now() });
    try {
      await DQIdeas.save(idea);
    } catch (error) {
      say("The server cannot be reached, and this browser would not keep the idea: try again later.");
      section.hidden = false;
      return;
    }
    const box = form.querySelector("textarea[name=prompt]");
    box.value = "";
    box.dispatchEvent(new Event("input")); // app.js keeps the (now empty) draft
    say("The server cannot be reached: saved on this phone, sent by itself once it answers.");
    await render();
    requestSync();
    keepSending();
  }

  form.addEventListener("submit", async (event) => {
    if (form.dataset.serverAnswers) { // checked just now: send it as the plain form it is
      delete form.dataset.serverAnswers;
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation(); // app.js's submit handling runs on the real send
    if (isChecking) return; // a second tap while we ask
    isChecking = true;
    const { submitter } = event;
    try {
      if (await serverAnswers()) {
        form.dataset.serverAnswers = "true";
        if (form.requestSubmit) form.requestSubmit(submitter);
        else form.submit();
      } else {
        await keep();
      }
    } finally {
      isChecking = false;
    }
  });

  list.addEventListener("click", async (event) => {
    const key = event.target.closest("[data-discard]")?.dataset.discard;
    if (!key) return;
    await DQIdeas.discard(key);
    say("");
    await render();
  });

  navigator.serviceWorker?.addEventListener("message", (event) => {
    if (event.data?.type === "dalleq:ideas-changed") render();
  });
  window.addEventListener("online", keepSending);
  window.addEventListener("pageshow", (event) => { if (event.persisted) keepSending(); });
  loginLink.href = `${DQ.root}/login?next=${encodeURIComponent("/")}`;
  keepSending();
})();

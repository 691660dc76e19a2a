/* dalle-queue: ideas saved on the phone while the server cannot be reached (issue 18).
 *
 * Shared by the page (static/offline.js) and the service worker (sw.js, importScripts), so both
 * read and send the same IndexedDB store. Each idea is one submit of the queue form, kept as the
 * exact JSON body it will be sent with and an Idempotency-Key made when it was stored (its
 * primary key): the page and the worker's Background Sync may both send it, and a resend after a
 * lost answer may follow, but the server queues one job per key (server/idempotency.py,
 * docs/api.md). The body is sent as stored, byte for byte, since the key is bound to it.
 *
 * An idea also keeps the CSRF token of the page that stored it, for the service worker (it has
 * no page to read one from); the page sends with its own, fresher token.
 */
"use strict";

self.DQIdeas = (() => {
  const DB_NAME = "dalleq";
  const DB_VERSION = 1;
  const STORE = "ideas";
  // Answers that mean the idea itself is refused (bad values, key reused): resending cannot help.
  const REFUSED_STATUSES = new Set([400, 413, 422]);

  function openDb() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "key" });
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  /* Run `work(store)` in one transaction; resolves with the result of the request it returns. */
  async function inStore(mode, work) {
    const db = await openDb();
    try {
      return await new Promise((resolve, reject) => {
        const transaction = db.transaction(STORE, mode);
        const request = work(transaction.objectStore(STORE));
        transaction.oncomplete = () => resolve(request?.result);
        transaction.onerror = transaction.onabort = () => reject(transaction.error);
      });
    } finally {
      db.close();
    }
  }

  /* Every waiting idea, oldest first. */
  async function all() {
    const ideas = await inStore("readonly", (store) => store.getAll());
    return ideas.sort((a, b) => a.savedAt - b.savedAt);
  }

  function save(idea) {
    return inStore("readwrite", (store) => store.put(idea));
  }

  function discard(key) {
    return inStore("readwrite", (store) => store.delete(key));
  }

  /* Note why an idea was not sent, unless it was sent (and removed) meanwhile by the other side. */
  function markProblem(key, problem) {
    return inStore("readwrite", (store) => {
      const request = store.get(key);
      request.onsuccess = () => {
        if (request.result) store.put({ ...request.result, problem });
      };
      return null;
    });
  }

  /* A new idea from the queue form's fields (prompt, grid, seed, advanced knobs as typed). */
  function make(fields, { key, csrfToken, now }) {
    return { key, body: JSON.stringify(fields), prompt: fields.prompt, csrfToken, savedAt: now };
  }

  async function problemOf(response) {
    let message = `the server answered ${response.status}`;
    try {
      message = (await response.json()).error.message || message;
    } catch (error) {
      // not our JSON error (a proxy's page): the status says enough
    }
    return { status: response.status, message, isRefused: REFUSED_STATUSES.has(response.status) };
  }

  /* Send every waiting idea that can still go, oldest first.
   *
   * Returns {sentCount, isOffline, problem}: isOffline when the server could not be reached (the
   * rest wait), problem when the session is over (401) or the token is refused (403), which
   * the rest would meet too. Ideas refused for their values wait, marked, to be discarded.
   */
  async function sendAll({ root, csrfToken = null }) {
    let sentCount = 0;
    for (const idea of await all()) {
      if (idea.problem?.isRefused) continue;
      let response;
      try {
        response = await fetch(`${root}/api/v1/jobs`, {
          method: "POST",
          credentials: "same-origin",
          cache: "no-store",
          headers: {
            Accept: "application/json",
            "Content-Type": "application/json",
            "Idempotency-Key": idea.key,
            "X-CSRF-Token": csrfToken || idea.csrfToken || "",
          },
          body: idea.body,
        });
      } catch (error) {
        return { sentCount, isOffline: true, problem: null };
      }
      if (response.ok) {
        await discard(idea.key);
        sentCount += 1;
        continue;
      }
      const problem = await problemOf(response);
      await markProblem(idea.key, problem);
      if (!problem.isRefused) return { sentCount, isOffline: false, problem };
    }
    return { sentCount, isOffline: false, problem: null };
  }

  return { all, save, discard, make, sendAll };
})();

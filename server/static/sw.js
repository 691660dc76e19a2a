/* dalle-queue's service worker. Three separate jobs, each in its own block below:
 * - notifications: Android browsers show "done" notifications only from a service worker, and a
 *   tap on one opens the job's page;
 * - the app shell: the queue page and its static files, so the app opens without a network (in
 *   a tunnel, the tailnet down) and the form still takes ideas. Network first, the cache only
 *   when the network fails. Nothing else is ever cached: no job image (a deleted job's images
 *   must be gone, issue 16), no API answer, no other page;
 * - ideas saved offline (static/ideas.js): Background Sync sends them once the network is back.
 */
"use strict";

importScripts("static/ideas.js");

self.addEventListener("install", (event) => {
  event.waitUntil(cacheShell().finally(() => self.skipWaiting()));
});
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// -- notifications -----------------------------------------------------------------------------
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data?.url || "/";
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((client) => new URL(client.url).pathname === url);
    if (open) return open.focus();
    return self.clients.openWindow(url);
  })());
});

/* -- Web Push (issue 18, static/push.js): a job ended, perhaps with no tab open. The message is
 * the server's JSON (server/push_messages.py); its URLs are relative to the app's root, which is
 * this worker's scope. A tap on the notification opens the job (the notificationclick above). */
self.addEventListener("push", (event) => {
  let message = null;
  try {
    message = event.data?.json() ?? null;
  } catch (error) {
    message = null; // not ours, or not JSON: still show something, as browsers require
  }
  const scope = self.registration.scope;
  const absolute = (url) => (url ? new URL(url, scope) : null);
  const page = absolute(message?.url) || new URL(scope);
  const options = {
    body: message?.body || "",
    icon: absolute(message?.icon)?.href || new URL("static/icon-192.png", scope).href,
    tag: message?.tag,
    // the click handler above compares and opens this path (same origin) or whole URL
    data: { url: page.origin === self.location.origin ? page.pathname : page.href },
  };
  if (message?.image) options.image = absolute(message.image).href;
  event.waitUntil(self.registration.showNotification(message?.title || "dalle-queue", options));
});

// -- the app shell -----------------------------------------------------------------------------
const SHELL_CACHE = "dalleq-shell-v1";
const SCOPE = new URL(self.registration.scope);
const SHELL_PAGE = SCOPE.pathname; // the queue page, "/" (or the root under a prefix)
const STATIC_PREFIX = `${SCOPE.pathname}static/`; // app JS, CSS and icons; never job images
const SHELL_FILES = [
  SHELL_PAGE, "static/app.js", "static/session.js", "static/notice.js", "static/workers.js",
  "static/form.js", "static/undo.js", "static/queue.js", "static/worker_states.js", "static/push.js",
  "static/ideas.js",
  "static/offline.js", "static/style.css", "static/icon-192.png", "static/icon-512.png", "static/apple-touch-icon.png",
];

async function cacheShell() {
  try {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(SHELL_FILES.map((path) => new URL(path, SCOPE)));
    await keepShellPage(cache, await fetch(SHELL_PAGE, { credentials: "same-origin" }));
  } catch (error) {
    // offline at install: the shell fills in as the pages are visited
  }
}

/* Whether a request is part of the shell: the queue page (a shared link's /?prompt=... is
 * answered from it offline) or a static file. */
function shellKey(request) {
  if (request.method !== "GET") return null;
  const url = new URL(request.url);
  if (url.origin !== SCOPE.origin) return null;
  if (request.mode === "navigate" && url.pathname === SHELL_PAGE) return SHELL_PAGE;
  if (url.pathname.startsWith(STATIC_PREFIX)) return url.pathname;
  return null;
}

/* Keep the queue page as the offline shell when it is the plain page: not a redirect (to the
 * login: then forget it, the person logged out), not a shared link's filled form, and without
 * a one-time message ("Queued ...") that would show again on every offline start. */
async function keepShellPage(cache, response, url = SCOPE) {
  if (response.type === "opaqueredirect" || response.redirected) {
    await cache.delete(SHELL_PAGE);
    return;
  }
  if (!response.ok || new URL(url).search) return;
  const html = await response.clone().text();
  if (!html.includes('class="flash"')) {
    await cache.put(SHELL_PAGE, new Response(html, { headers: response.headers }));
  }
}

async function networkThenShell(event, key) {
  const cache = await caches.open(SHELL_CACHE);
  try {
    const response = await fetch(event.request);
    if (key === SHELL_PAGE) event.waitUntil(keepShellPage(cache, response, event.request.url));
    else if (response.ok) event.waitUntil(cache.put(key, response.clone()));
    return response;
  } catch (error) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const key = shellKey(event.request);
  if (key) event.respondWith(networkThenShell(event, key));
});

// -- ideas saved offline -----------------------------------------------------------------------
const IDEAS_SYNC_TAG = "dalleq-ideas";

async function sendIdeas() {
  const { isOffline } = await self.DQIdeas.sendAll({ root: SCOPE.pathname.replace(/\/$/, "") });
  const windows = await self.clients.matchAll({ type: "window" });
  windows.forEach((client) => client.postMessage({ type: "dalleq:ideas-changed" }));
  if (isOffline) throw new Error("the server cannot be reached yet"); // the browser retries later
}

self.addEventListener("sync", (event) => {
  if (event.tag === IDEAS_SYNC_TAG) event.waitUntil(sendIdeas());
});

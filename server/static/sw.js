/* dalle-queue's service worker. It caches nothing (the queue is live data); it is here so that
 * Android browsers can show "done" notifications, which they only allow from a service worker,
 * and so a tap on one opens the job's page.
 */
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

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

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

/* "Notify me when jobs finish" (issue 18): Web Push, so the phone hears of a finished job with
 * the tab closed.
 *
 * Turning it on asks for notification permission (on the tap: browsers allow the prompt only in
 * a user gesture), subscribes this browser's push service with the server's VAPID key
 * (GET /api/v1/push/key) and stores the subscription (POST /api/v1/push/subscriptions). Turning
 * it off unsubscribes and deletes it. The control says which state it is in: on, off, blocked,
 * or not supported here with the reason (plain http; an iPhone outside the Home Screen app).
 * The service worker (sw.js) shows the pushes.
 */
"use strict";

(() => {
  const control = document.querySelector("[data-push]");
  if (!control) return;
  const button = control.querySelector("[data-push-toggle]");
  const status = control.querySelector("[data-push-status]");

  const isApple = /iPhone|iPad|iPod/.test(navigator.userAgent)
    || (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1); // iPadOS says "Mac"
  const isHomeScreenApp = window.matchMedia("(display-mode: standalone)").matches
    || navigator.standalone === true;

  function show(state, text) {
    control.dataset.state = state;
    status.textContent = text;
    button.hidden = state === "unsupported" || state === "blocked";
    button.disabled = false;
    button.textContent = state === "on" ? "Turn off" : "Turn on";
    button.setAttribute("aria-pressed", String(state === "on"));
  }

  /* Why this browser cannot get pushes here, or "" when it can. */
  function unsupportedReason() {
    if (isApple && !isHomeScreenApp) {
      return "On iPhone and iPad: add to Home Screen first (Share → Add to Home Screen), "
        + "then open it from there (iOS 16.4 or later).";
    }
    if (!window.isSecureContext) {
      return "Not supported here: notifications need HTTPS (open the tailscale serve address).";
    }
    if (!("serviceWorker" in navigator) || !("PushManager" in window)
        || !("Notification" in window)) {
      return "Not supported in this browser.";
    }
    return "";
  }

  const registration = () => navigator.serviceWorker.register(`${DQ.root}/sw.js`);

  /* The VAPID key as the bytes pushManager.subscribe takes. */
  function keyBytes(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(binary, (char) => char.charCodeAt(0));
  }

  async function turnOn() {
    const permission = await Notification.requestPermission();
    if (permission === "denied") {
      show("blocked", "Blocked: allow notifications for this site in the browser's settings.");
      return;
    }
    if (permission !== "granted") {
      show("off", "Off: the browser did not allow notifications.");
      return;
    }
    const { public_key: publicKey } = await DQ.api("/api/v1/push/key");
    const worker = await registration();
    const subscription = await worker.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: keyBytes(publicKey),
    });
    await DQ.api("/api/v1/push/subscriptions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(subscription.toJSON()),
    });
    show("on", "On: this device is told when each job finishes, even with the page closed.");
  }

  async function turnOff() {
    const subscription = await (await registration()).pushManager.getSubscription();
    if (subscription) {
      await DQ.api("/api/v1/push/subscriptions", {
        method: "DELETE",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ endpoint: subscription.endpoint }),
      });
      await subscription.unsubscribe();
    }
    show("off", "Off.");
  }

  async function toggle() {
    const wasOn = control.dataset.state === "on";
    button.disabled = true;
    status.textContent = wasOn ? "Turning off…" : "Turning on…";
    try {
      await (wasOn ? turnOff() : turnOn());
    } catch (error) {
      show(wasOn ? "on" : "off",
        `Could not turn ${wasOn ? "off" : "on"}: ${error.message || error}.`);
    }
  }

  async function start() {
    control.hidden = false;
    const reason = unsupportedReason();
    if (reason) return show("unsupported", reason);
    if (Notification.permission === "denied") {
      return show("blocked", "Blocked: allow notifications for this site in the browser's settings.");
    }
    button.addEventListener("click", toggle);
    try {
      const subscription = await (await registration()).pushManager.getSubscription();
      show(subscription ? "on" : "off", subscription ? "On for this device." : "Off.");
    } catch (error) {
      show("off", "Off.");
    }
  }

  start();
})();

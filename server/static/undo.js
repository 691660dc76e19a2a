/* Undo for the live queue's ✕ (index.html, static/queue.js): a tap does not cancel at once. The
 * row shows "Canceling… Undo" for UNDO_MS, and the cancel is sent only when that window passes
 * untouched: a stray tap on a phone costs nothing (Gmail's "Undo send" pattern).
 *
 * Leaving the page during the window (pagehide), or the phone hiding it (visibilitychange), sends
 * the cancel at once with fetch keepalive: the person tapped ✕ and did not take it back, and a
 * timer in a hidden or closed page may never fire, which would lose the cancel silently.
 * The no-JS row form and the job page's Cancel button still cancel directly.
 */
"use strict";

const DQUndo = (() => {
  const UNDO_MS = 5000;
  const pending = new Map(); // form -> {timer, send, note, button}

  /* Start the undo window for `form`'s cancel; `send({keepalive})` cancels for real. */
  function offer(form, send) {
    if (pending.has(form)) return;
    const button = form.querySelector("[type=submit]");
    const note = document.createElement("span");
    note.className = "undo-note";
    note.setAttribute("role", "status");
    const undo = document.createElement("button");
    undo.type = "button";
    undo.className = "link-button";
    undo.textContent = "Undo";
    undo.addEventListener("click", () => settle(form, { isCanceled: false }));
    note.append("Canceling… ", undo);
    button.hidden = true;
    form.append(note);
    const timer = setTimeout(() => settle(form, { isCanceled: true }), UNDO_MS);
    pending.set(form, { timer, send, note, button });
    undo.focus();
  }

  function settle(form, { isCanceled, keepalive = false }) {
    const entry = pending.get(form);
    if (!entry) return;
    pending.delete(form);
    clearTimeout(entry.timer);
    if (isCanceled) {
      entry.note.textContent = "Canceling…"; // until the next poll moves the row to "Finished"
      entry.send({ keepalive });
    } else {
      entry.note.remove();
      entry.button.hidden = false;
      entry.button.focus();
    }
  }

  function sendAllNow() {
    for (const form of [...pending.keys()]) settle(form, { isCanceled: true, keepalive: true });
  }

  window.addEventListener("pagehide", sendAllNow);
  document.addEventListener("visibilitychange", () => { if (document.hidden) sendAllNow(); });

  return { offer, UNDO_MS };
})();

/* The gallery cards' date and status badge (templates/_gallery_card.html): each card says when
 * its prompt was queued, as a short local date, and its status when it is not done. Cards the
 * server rendered are put in local time here; cards gallery.js adds are filled the same way.
 */
"use strict";

(() => {
  const SHORT_DATE = { year: "numeric", month: "short", day: "numeric" };
  const STATUS_TEXT = { queued: "Queued", running: "Running", failed: "Failed", canceled: "Canceled" };

  function showDate(node, iso) {
    if (iso) node.dateTime = iso;
    const moment = new Date(node.dateTime);
    if (!Number.isNaN(moment.getTime())) {
      node.textContent = moment.toLocaleDateString(undefined, SHORT_DATE);
      node.title = moment.toLocaleString();
    }
  }

  DQ.onFill((element, job) => {
    const date = element.querySelector('[data-field="created"]');
    if (date) showDate(date, job.created_at);
    const badge = element.querySelector('[data-field="badge"]');
    if (badge) {
      badge.dataset.status = job.status;
      badge.textContent = STATUS_TEXT[job.status] || job.status;
      badge.hidden = job.status === "done";
    }
  });

  // After app.js's localTimes(), which writes the long form into every <time>.
  document.addEventListener("DOMContentLoaded", () => {
    for (const node of document.querySelectorAll("time.card-date")) showDate(node);
  });
})();

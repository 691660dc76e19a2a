/* The live queue under the submit form (index.html): running and queued jobs with their place in
 * line and progress, then the last few finished. Polls GET /api/v1/jobs?status=queued,running;
 * when a job leaves that list it has finished (or was deleted), so the "Finished" list is fetched
 * again and the person is told (DQ.finished). Rows are clones of the server's own row template.
 */
"use strict";

(() => {
  const RECENT_COUNT = 6;
  const activeList = document.getElementById("active-list");
  const recentList = document.getElementById("recent-list");
  if (!activeList) return;
  let knownActive = new Set([...activeList.children].map((row) => row.dataset.jobId));

  function rowFor(list, job) {
    const existing = list.querySelector(`[data-job-id="${CSS.escape(job.id)}"]`);
    if (existing) return DQ.fill(existing, job);
    const row = DQ.fromTemplate("job-row-template", job);
    row.id = `job-${job.id}`;
    row.dataset.jobId = job.id;
    return row;
  }

  /* Make `list` show exactly `jobs`, in order, reusing rows so nothing flickers. */
  function render(list, jobs) {
    const rows = jobs.map((job) => rowFor(list, job));
    rows.forEach((row, index) => {
      if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
    });
    while (list.children.length > rows.length) list.lastElementChild.remove();
  }

  function queueOrder(jobs) {
    const rank = (job) => [job.status === "running" ? 0 : 1, job.position || 0];
    return jobs.sort((a, b) => {
      const [x, y] = [rank(a), rank(b)];
      return x[0] - y[0] || x[1] - y[1];
    });
  }

  function showCounts(jobs) {
    const running = jobs.filter((job) => job.status === "running").length;
    document.querySelector("[data-counts]").textContent =
      `${running} running · ${jobs.length - running} queued`;
    document.querySelector("[data-empty]").hidden = jobs.length > 0;
  }

  async function refresh() {
    const { jobs } = await DQ.api("/api/v1/jobs?status=queued,running&limit=100");
    render(activeList, queueOrder(jobs));
    showCounts(jobs);
    const nowActive = new Set(jobs.map((job) => job.id));
    const ended = [...knownActive].filter((id) => !nowActive.has(id));
    knownActive = nowActive;
    if (ended.length) {
      const recent = await DQ.api(`/api/v1/jobs?status=done,failed,canceled&limit=${RECENT_COUNT}`);
      render(recentList, recent.jobs);
      recent.jobs.filter((job) => ended.includes(job.id)).forEach(DQ.finished);
    }
  }

  /* Cancel from a row through the API, so the queue stays put, after an undo window
   * (static/undo.js); the plain form is the fallback. */
  async function sendCancel(form, id, { keepalive }) {
    try {
      await DQ.api(`/api/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST", keepalive });
      poller.now();
    } catch (error) {
      if (error.status === 409) poller.now(); // it finished meanwhile: the next poll shows how
      else if (!keepalive) form.submit(); // the page is going away: nothing left to fall back to
    }
  }

  activeList.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-api-cancel]");
    if (!form) return;
    event.preventDefault();
    const id = form.closest("[data-job-id]").dataset.jobId;
    DQUndo.offer(form, (options) => sendCancel(form, id, options));
  });

  const poller = DQ.poll(refresh);
  document.addEventListener("dq:queued", () => poller.now()); // ideas sent from offline.js
})();

/* The queue page's "Workers" list (templates/_workers.html): each worker and what it is doing,
 * polled from GET /api/v1/workers (server/worker_states.py), so "paused: GPU busy" shows up and
 * goes away without a reload. The same words as worker_states.words(), with times in the
 * phone's own zone.
 */
"use strict";

(() => {
  const section = document.querySelector("[data-worker-states]");
  if (!section) return;
  const list = section.querySelector("[data-worker-list]");

  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function words(view) {
    if (view.status === "paused") return `paused: ${view.reason}`;
    if (view.status === "working" || view.status === "idle") {
      return view.reason ? `${view.status}: ${view.reason}` : view.status;
    }
    if (view.status === "asked") {
      const minutes = Math.floor((Date.now() - Date.parse(view.last_claim_at)) / 60000);
      return minutes < 1 ? "asked for jobs just now" : `asked for jobs ${minutes} min ago`;
    }
    return `not seen since ${clock(view.last_seen_at)}`;
  }

  function row(view) {
    const item = document.createElement("li");
    item.className = "worker";
    item.dataset.worker = view.worker;
    item.dataset.status = view.status;
    const name = document.createElement("span");
    name.className = "worker-name";
    name.textContent = view.worker;
    const state = document.createElement("span");
    state.className = "worker-state";
    state.textContent = words(view);
    item.append(name, " · ", state);
    return item;
  }

  async function refresh() {
    const { workers } = await DQ.api("/api/v1/workers");
    list.replaceChildren(...workers.map(row));
    section.hidden = workers.length === 0;
  }

  DQ.poll(refresh);
})();

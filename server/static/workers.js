/* Which models a worker asked for lately (server/sightings.py), as the queue page rendered them
 * on its form: a queued job whose model no worker asked for says so on its row, and so does the
 * form while the model is typed, instead of the job waiting "#1 in line" with no word. The same
 * words as ServedModels.warning().
 */
"use strict";

(() => {
  const form = document.querySelector("form[data-served-models]");
  if (!form) return;
  const served = new Set(JSON.parse(form.dataset.servedModels));
  const anyWorkerSeen = form.dataset.anyWorkerSeen === "true";
  const minutes = form.dataset.seenMinutes;

  function warning(model) {
    if (!model || served.has(model)) return "";
    if (!anyWorkerSeen) {
      return `No worker has asked this server for jobs yet, so model '${model}' has none.`;
    }
    return `No worker has asked for model '${model}' in the last ${minutes} minutes.`;
  }

  function show(node, text) {
    node.textContent = text;
    node.hidden = !text;
  }

  DQ.onFill((element, job) => {
    const note = element.querySelector('[data-field="no-worker"]');
    if (note) show(note, job.status === "queued" ? warning(job.model) : "");
  });

  const modelInput = form.querySelector('input[name="model"]');
  const hint = form.querySelector("[data-no-worker-hint]");
  if (!modelInput || !hint) return;
  const check = () => show(hint, warning(modelInput.value.trim()));
  modelInput.addEventListener("input", check);
  check();
})();

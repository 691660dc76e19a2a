/* One-tap stars (templates/_star.html): the form's POST /jobs/<id>/star is the no-JS path; here
 * the tap goes to POST /api/v1/jobs/<id>/star (shared/API-1.1.md) and the star changes in place,
 * without leaving the page. If the API cannot be reached the form is sent the plain way.
 */
"use strict";

(() => {
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches?.("form.star-form") || !form.dataset.jobId) return;
    event.preventDefault();
    if (form.dataset.sending) return; // a second tap while the first is on its way
    form.dataset.sending = "true";
    const isStarred = form.elements.starred.value === "true";
    try {
      const job = await DQ.api(`/api/v1/jobs/${encodeURIComponent(form.dataset.jobId)}/star`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ starred: isStarred }),
      });
      DQ.showStar(form, job.starred);
    } catch (error) {
      if (error.status === undefined) form.submit(); // offline or a network error: the plain way
    } finally {
      delete form.dataset.sending;
    }
  });
})();

/* The job page (job.html): live status and progress from GET /api/v1/jobs/<id>, the newest live
 * preview of a running job (DQ.showLatest, through DQ.fill), the grid put in place without a
 * reload when the job is done, and a lightbox for full-size tiles (with each tile's CLIP score
 * when the job is ranked).
 *
 * Progress changes often and only moves the bar (DQ.fill). A change of status changes what the
 * page shows (cancel button, grid, error), so the page itself is fetched once and its [data-swap]
 * sections replace ours: the server's templates stay the one place that markup is written.
 */
"use strict";

(() => {
  const article = document.getElementById("job");
  if (!article) return;
  const jobId = article.dataset.jobId;
  let shownStatus = article.dataset.status;

  async function swapSections() {
    const response = await fetch(location.pathname, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`page ${response.status}`);
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const section of document.querySelectorAll("[data-swap]")) {
      const replacement = fresh.getElementById(section.id);
      if (replacement) section.replaceWith(document.adoptNode(replacement));
    }
  }

  async function refresh() {
    const job = await DQ.api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
    DQ.fill(document.getElementById("job-status"), job);
    DQ.fill(document.getElementById("job-result"), job);
    if (job.status !== shownStatus) {
      await swapSections();
      shownStatus = job.status;
      article.dataset.status = job.status;
      if (!DQ.isActive(job)) DQ.finished(job);
    }
    return DQ.isActive(job); // a finished job never changes again: stop polling
  }

  if (DQ.isActive({ status: shownStatus })) DQ.poll(refresh);

  // -- lightbox: tap a tile for the full-size image; swipe or use the arrows for the next ----
  const dialog = document.getElementById("lightbox");
  const image = document.getElementById("lightbox-image");
  const count = document.getElementById("lightbox-count");
  const download = document.getElementById("lightbox-download");
  const caption = document.getElementById("lightbox-caption");
  const SWIPE_PX = 40;
  let tiles = [];
  let index = 0;
  let touchStartX = null;

  function show(newIndex) {
    index = (newIndex + tiles.length) % tiles.length;
    const url = tiles[index].getAttribute("href");
    image.src = url;
    image.alt = tiles[index].querySelector("img")?.alt || "";
    download.href = `${url}?download=1`;
    count.textContent = `${index + 1} / ${tiles.length}`;
    showScore(tiles[index], index === 0);
  }

  // A ranked job's tiles come best first, each with its CLIP score (templates/_job_result.html).
  function showScore(tile, isBest) {
    if (!caption) return;
    const score = tile.dataset.score;
    caption.hidden = score === undefined;
    const imageNumber = Number(tile.dataset.index) + 1;
    caption.textContent = score === undefined
      ? ""
      : `${isBest ? "Best · " : ""}score ${score} · image ${imageNumber}`;
  }

  document.addEventListener("click", (event) => {
    const tile = event.target.closest("#job-result a.tile");
    if (!tile || !dialog?.showModal) return; // no <dialog> support: the link opens the PNG
    event.preventDefault();
    tiles = [...document.querySelectorAll("#job-result a.tile")];
    show(tiles.indexOf(tile));
    dialog.showModal();
  });

  dialog?.addEventListener("click", (event) => {
    const step = event.target.closest("[data-step]");
    if (step) show(index + Number(step.dataset.step));
    else if (event.target.closest("[data-close]") || event.target === dialog) dialog.close();
  });
  dialog?.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") show(index - 1);
    if (event.key === "ArrowRight") show(index + 1);
  });
  image?.addEventListener("touchstart", (event) => {
    touchStartX = event.touches[0].clientX;
  }, { passive: true });
  image?.addEventListener("touchend", (event) => {
    if (touchStartX === null) return;
    const moved = event.changedTouches[0].clientX - touchStartX;
    touchStartX = null;
    if (Math.abs(moved) > SWIPE_PX) show(index + (moved < 0 ? 1 : -1));
  });
})();

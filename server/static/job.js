/* The job page (job.html): live status and progress from GET /api/v1/jobs/<id>, the newest live
 * preview of a running job (DQ.showLatest, through DQ.fill), the grid put in place without a
 * reload when the job is done, and a lightbox for full-size tiles (captioned with the prompt, the
 * seed, the tile's place and its CLIP score when the job is ranked; Back closes it).
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
  // Opening it pushes a history entry, so the phone's Back closes it and stays on this page;
  // closing it any other way (✕, Escape, a tap outside) takes that entry back off.
  const dialog = document.getElementById("lightbox");
  const image = document.getElementById("lightbox-image");
  const count = document.getElementById("lightbox-count");
  const download = document.getElementById("lightbox-download");
  const share = document.getElementById("lightbox-share");
  const promptText = document.getElementById("lightbox-prompt");
  const facts = document.getElementById("lightbox-facts");
  const SWIPE_PX = 40;
  const VIEWER_STATE = "dalleq-viewer";
  let tiles = [];
  let index = 0;
  let touchStartX = null;

  function show(newIndex) {
    index = (newIndex + tiles.length) % tiles.length;
    const tile = tiles[index];
    const url = tile.getAttribute("href");
    image.src = url;
    image.alt = tile.querySelector("img")?.alt || "";
    download.href = `${url}?download=1`;
    const keep = document.querySelector(`#job-result [data-share-url="${CSS.escape(url)}"]`);
    if (share && keep) {
      share.dataset.shareUrl = url;
      share.dataset.shareName = keep.dataset.shareName;
    }
    count.textContent = `${index + 1} / ${tiles.length}`;
    showCaption(tile, index === 0);
  }

  // Prompt, then the tile's facts; a ranked job's tiles come best first, each with its CLIP
  // score (templates/_job_result.html).
  function showCaption(tile, isBest) {
    const score = tile.dataset.score;
    const imageNumber = Number(tile.dataset.index) + 1;
    const parts = [`image ${imageNumber} of ${tiles.length}`, `seed ${article.dataset.seed}`];
    if (score !== undefined) parts.unshift(`${isBest ? "Best · " : ""}score ${score}`);
    if (promptText) promptText.textContent = document.querySelector(".job-title")?.textContent;
    if (facts) facts.textContent = parts.join(" · ");
  }

  document.addEventListener("click", (event) => {
    const tile = event.target.closest("#job-result a.tile");
    if (!tile || !dialog?.showModal) return; // no <dialog> support: the link opens the PNG
    event.preventDefault();
    tiles = [...document.querySelectorAll("#job-result a.tile")];
    show(tiles.indexOf(tile));
    dialog.showModal();
    history.pushState({ [VIEWER_STATE]: true }, "");
  });

  dialog?.addEventListener("click", (event) => {
    const step = event.target.closest("[data-step]");
    if (step) show(index + Number(step.dataset.step));
    else if (event.target.closest("[data-close]") || event.target === dialog) dialog.close();
  });
  // Closed by ✕, Escape or a tap outside: drop the entry Back would otherwise close it with.
  dialog?.addEventListener("close", () => {
    if (history.state?.[VIEWER_STATE]) history.back();
  });
  // Back while it is open: the entry is already gone, so closing it pops nothing more.
  window.addEventListener("popstate", () => {
    if (dialog?.open) dialog.close();
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

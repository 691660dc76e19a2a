/* Keep a tile: share it with the Web Share API, as a PNG file, where the phone can share files
 * (navigator.canShare({files})). Buttons carry data-share-url (the stored tile, served unchanged, so
 * its PNG text chunks travel with it) and data-share-name; where files cannot be shared they stay
 * hidden (style.css shows them only under html[data-share-files]), and the download links remain.
 */
"use strict";

(() => {
  function canShareFiles() {
    if (!navigator.canShare || !navigator.share) return false;
    try {
      const probe = new File([new Uint8Array(8)], "probe.png", { type: "image/png" });
      return navigator.canShare({ files: [probe] });
    } catch (error) {
      return false;
    }
  }

  if (!canShareFiles()) return;
  document.documentElement.dataset.shareFiles = "true";

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-share-url]");
    if (!button || !button.dataset.shareUrl) return;
    button.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(button.dataset.shareUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`tile ${response.status}`);
      const file = new File([await response.blob()], button.dataset.shareName, {
        type: "image/png",
      });
      if (navigator.canShare({ files: [file] })) {
        await navigator.share({ files: [file], title: document.title });
      }
    } catch (error) {
      // the person closed the share sheet (AbortError), or the tile is gone: nothing to undo
    } finally {
      button.removeAttribute("aria-busy");
    }
  });
})();

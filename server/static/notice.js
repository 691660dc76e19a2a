/* The server's notice (the demo model's warning, templates/base.html) folds down to its summary
 * line: read once, it should not take a fifth of every screen. The fold is remembered in
 * localStorage for this notice's text, so a new notice opens again.
 */
"use strict";

(() => {
  const FOLDED_KEY = "dalleq.notice-folded";
  const notice = document.getElementById("notice");
  if (!notice) return;
  const text = notice.textContent.trim();
  try {
    if (localStorage.getItem(FOLDED_KEY) === text) notice.open = false;
    notice.addEventListener("toggle", () => {
      if (notice.open) localStorage.removeItem(FOLDED_KEY);
      else localStorage.setItem(FOLDED_KEY, text);
    });
  } catch (error) {
    // storage refused (private browsing): the notice still folds, for this page
  }
})();

/* Infinite scroll for the gallery (gallery.html). The "More" link is a plain link to the next
 * page and keeps working without JS; here, when it comes near the screen, the next page is
 * fetched from GET /api/v1/jobs?status=done&cursor=... (with the page's search and starred
 * filter) and its cards appended in place.
 */
"use strict";

(() => {
  const gallery = document.getElementById("gallery");
  const more = document.getElementById("more");
  if (!gallery || !more || !("IntersectionObserver" in window)) return;
  const NEAR_PX = 800; // start loading this far below the screen, so scrolling rarely waits
  let loading = false;

  async function loadNext() {
    if (loading || !more.dataset.cursor) return;
    loading = true;
    let loaded = false;
    more.setAttribute("aria-busy", "true");
    try {
      const params = new URLSearchParams({
        status: "done", limit: gallery.dataset.pageSize, cursor: more.dataset.cursor,
      });
      if (gallery.dataset.query) params.set("q", gallery.dataset.query);
      if (gallery.dataset.starred) params.set("starred", gallery.dataset.starred);
      const page = await DQ.api(`/api/v1/jobs?${params}`);
      for (const job of page.jobs) gallery.append(DQ.fromTemplate("card-template", job));
      if (page.next_cursor) {
        more.dataset.cursor = page.next_cursor;
        const next = new URL(more.href);
        next.searchParams.set("cursor", page.next_cursor);
        more.href = next.toString();
      } else {
        observer.disconnect();
        more.closest(".more").remove();
      }
      loaded = true;
    } catch (error) {
      // leave the link: a tap on "More" loads the next page the plain way
    } finally {
      loading = false;
      more.removeAttribute("aria-busy");
    }
    // a tall screen may still show the link: keep going until it is pushed off
    if (loaded && more.isConnected && more.getBoundingClientRect().top < innerHeight + NEAR_PX) {
      loadNext();
    }
  }

  const observer = new IntersectionObserver(
    (entries) => { if (entries.some((entry) => entry.isIntersecting)) loadNext(); },
    { rootMargin: `0px 0px ${NEAR_PX}px 0px` },
  );
  observer.observe(more);
})();

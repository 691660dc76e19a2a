/* A page whose session ended elsewhere (logged out in another tab, or the login expired) used to
 * fail in silence: its polls got 401 and backed off. DQ.api announces a 401 ("dq:session-ended");
 * this shows a banner with a login link that comes back to this page, and keeps the submit form
 * as typed: the prompt is already a draft in localStorage (app.js), the other fields are kept in
 * sessionStorage here and put back when this tab shows the form again after logging in.
 */
"use strict";

(() => {
  const FORM_KEY = "dalleq.session-form";
  const PAGE_ONLY_FIELDS = new Set(["csrf_token", "idempotency_key", "next"]);
  const root = document.querySelector('meta[name="root"]')?.content ?? "";
  const submitForm = () => document.querySelector("form.submit-form");

  function keepForm() {
    const form = submitForm();
    if (!form) return;
    const fields = {};
    for (const [name, value] of new FormData(form)) {
      if (!PAGE_ONLY_FIELDS.has(name) && name !== "prompt") fields[name] = value;
    }
    try {
      sessionStorage.setItem(FORM_KEY, JSON.stringify(fields));
    } catch (error) {
      // storage refused (private browsing): the prompt draft still survives in localStorage
    }
  }

  function restoreForm() {
    const form = submitForm();
    let fields = null;
    try {
      fields = JSON.parse(sessionStorage.getItem(FORM_KEY) || "null");
      if (form && fields) sessionStorage.removeItem(FORM_KEY);
    } catch (error) {
      return;
    }
    if (!form || !fields) return;
    for (const [name, value] of Object.entries(fields)) {
      for (const input of form.querySelectorAll(`[name="${CSS.escape(name)}"]`)) {
        if (input.type === "radio") input.checked = input.value === value;
        else input.value = value;
      }
    }
  }

  function showBanner() {
    if (document.getElementById("session-ended")) return;
    const next = location.pathname.slice(root.length) + location.search;
    const banner = document.createElement("p");
    banner.id = "session-ended";
    banner.className = "session-ended";
    banner.setAttribute("role", "alert");
    const link = document.createElement("a");
    link.href = `${root}/login?${new URLSearchParams({ next: next || "/" })}`;
    link.textContent = "log in again";
    link.addEventListener("click", keepForm); // what was typed since the banner came, too
    banner.append("Your session ended; ", link, ".");
    document.querySelector("header.top").after(banner);
    keepForm();
  }

  document.addEventListener("dq:session-ended", showBanner);
  document.addEventListener("DOMContentLoaded", restoreForm);
})();

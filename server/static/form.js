/* The submit and edit forms (index.html, job.html): say what happens to a prompt, and point at
 * the field at fault.
 *
 * - The prompt box counts its characters ("123 / 500"). Its maxlength stays the limit, so nothing
 *   longer is ever sent; a paste cut by it is said out loud instead of silently, and a long prompt
 *   gets a hint that the model reads only its first 64 tokens (minidalle/config.py
 *   max_text_length): the rest is kept with the job but does not shape the image.
 * - DQForm.showError(form, error) marks the input an API error names (its code is
 *   `invalid_<field>`, shared/API.md) the way the server marks it on a refused form
 *   (templates/_field_error.html): aria-invalid, the message right after it, its folded section
 *   opened, the focus on it. Scripts that send a form through the API use it with the error body.
 * - The browser's own checks (required, pattern) get the same opening of a folded section: a
 *   browser cannot focus a field inside a closed <details> and then says nothing at all.
 */
"use strict";

const DQForm = (() => {
  // About 64 BPE tokens of English: ~4 characters a token, less for rare words and punctuation.
  const LONG_PROMPT_CHARS = 200;
  const ERROR_PREFIX = "invalid_";

  function openSectionsAround(element) {
    for (let section = element.closest("details"); section; section = section.parentElement.closest("details")) {
      section.open = true;
    }
  }

  function describedBy(element, id, isAdded) {
    const ids = (element.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    const kept = ids.filter((each) => each !== id).concat(isAdded ? [id] : []);
    if (kept.length) element.setAttribute("aria-describedby", kept.join(" "));
    else element.removeAttribute("aria-describedby");
  }

  function clearErrors(form) {
    for (const note of form.querySelectorAll(".form-error[data-from-script]")) note.remove();
    for (const input of form.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
    }
  }

  /* Mark the input that `error` ({code, message}, the API's error body) names; an error that
   * names no input of this form is shown at the top of the form. */
  function showError(form, error) {
    clearErrors(form);
    const name = error.code?.startsWith(ERROR_PREFIX) ? error.code.slice(ERROR_PREFIX.length) : "";
    const named = name ? form.elements.namedItem(name) : null;
    const input = named instanceof RadioNodeList ? named[0] : named;
    const note = document.createElement("p");
    note.className = "form-error";
    note.id = `${form.id || "form"}-script-error`;
    note.setAttribute("role", "alert");
    note.dataset.fromScript = "";
    note.textContent = error.message;
    if (!input) {
      form.prepend(note);
      return;
    }
    openSectionsAround(input);
    input.setAttribute("aria-invalid", "true");
    describedBy(input, note.id, true);
    (input.closest("label, fieldset") || input).after(note);
    input.focus();
  }

  function countPrompt(box) {
    const counter = document.getElementById("prompt-count");
    const longHint = document.getElementById("prompt-long");
    if (counter) counter.textContent = `${box.value.length} / ${box.maxLength}`;
    if (longHint) longHint.hidden = box.value.length < LONG_PROMPT_CHARS;
  }

  /* A paste longer than the room left is cut by maxlength: say how much was kept. */
  function tellWhenPasteIsCut(box, event) {
    const notice = document.getElementById("prompt-cut");
    if (!notice || box.maxLength < 0) return;
    const pasted = (event.clipboardData?.getData("text") || "").replace(/\r\n?/g, "\n");
    const room = box.maxLength - box.value.length + (box.selectionEnd - box.selectionStart);
    notice.hidden = pasted.length <= room;
    notice.textContent = notice.hidden ? "" : `Your paste had ${pasted.length} characters: only `
      + `the first ${room} fit (a prompt holds at most ${box.maxLength}).`;
  }

  function watchPrompt() {
    const box = document.querySelector("textarea[data-counted]");
    if (!box) return;
    countPrompt(box);
    box.addEventListener("input", () => countPrompt(box));
    box.addEventListener("paste", (event) => tellWhenPasteIsCut(box, event));
  }

  // A field the person changes is no longer the one at fault.
  document.addEventListener("input", (event) => {
    if (event.target.getAttribute?.("aria-invalid") === "true") {
      event.target.removeAttribute("aria-invalid");
    }
  });
  // The browser's own checks: `invalid` does not bubble, so listen while it goes down.
  document.addEventListener("invalid", (event) => openSectionsAround(event.target), true);
  document.addEventListener("DOMContentLoaded", watchPrompt);

  return { showError, clearErrors };
})();

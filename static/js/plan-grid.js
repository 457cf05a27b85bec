/* The allocation plan's grid: each SKU's "units left to give" follows every keystroke,
   counted here from the figures on the screen, so it is never older than what is typed.
   A figure that is not a whole number shows its error on its own cell and the SKU's
   total says so instead of showing a number. Nothing is saved until Save: the line
   beside it says whether what is on the screen is saved. */
(function () {
  "use strict";
  var MAX = 10000000;
  var MESSAGE = "Enter a whole number of units, 0 or more.";

  function figure(raw) {
    var text = String(raw).trim();
    if (!/^[0-9]+$/.test(text)) return null;
    var n = parseInt(text, 10);
    return n <= MAX ? n : null;
  }

  function start() {
    var form = document.querySelector("form[data-plan-grid]");
    if (!form) return;
    var state = document.getElementById("plan-save-state");
    var approve = document.getElementById("plan-approve-button");

    function markCell(input) {
      var ok = figure(input.value) !== null;
      var error = document.getElementById("error-" + input.id.replace("line-", ""));
      var cell = input.closest("td");
      if (ok) {
        input.removeAttribute("aria-invalid");
        if (cell) cell.classList.remove("has-error");
        if (error) error.textContent = "";
      } else {
        input.setAttribute("aria-invalid", "true");
        if (cell) cell.classList.add("has-error");
        if (error) error.textContent = MESSAGE;
      }
    }

    function recount(sku) {
      var out = document.getElementById("remaining-" + sku);
      if (!out) return;
      var left = parseInt(out.getAttribute("data-delivered"), 10);
      var unknown = false;
      form.querySelectorAll('input[data-sku="' + sku + '"]').forEach(function (input) {
        var n = figure(input.value);
        if (n === null) unknown = true;
        else left -= n;
      });
      out.classList.toggle("unknown", unknown);
      out.classList.toggle("zero", !unknown && left < 0);
      out.setAttribute("data-remaining", unknown ? "" : String(left));
      out.textContent = unknown ? "Fix the marked figure" : left < 0 ? (-left) + " too many" : left + " left";
    }

    function showState() {
      var dirty = false, bad = false;
      form.querySelectorAll("input[data-sku]").forEach(function (input) {
        if (input.value.trim() !== input.getAttribute("data-saved")) dirty = true;
        if (figure(input.value) === null) bad = true;
      });
      if (!state) return;
      if (dirty) {
        state.setAttribute("data-state", "unsaved");
        state.textContent = bad ? "Not saved: fix the marked figures, then Save." : "Changes not saved yet: Save keeps them.";
      } else if (state.getAttribute("data-state") === "unsaved") {
        state.setAttribute("data-state", "saved");
        state.textContent = "No unsaved change.";
      }
      // Approval takes the saved figures: approving with unsaved ones on screen would
      // approve something other than what head office is looking at.
      if (approve) {
        approve.disabled = dirty;
        approve.title = dirty ? "Save first: approval takes the saved figures." : "";
      }
    }

    form.addEventListener("input", function (event) {
      var input = event.target;
      if (!input.matches || !input.matches("input[data-sku]")) return;
      markCell(input);
      recount(input.getAttribute("data-sku"));
      showState();
    });
    window.addEventListener("beforeunload", function (event) {
      if (state && state.getAttribute("data-state") === "unsaved") event.preventDefault();
    });
    form.addEventListener("submit", function () {
      if (state) state.setAttribute("data-state", "saving");
    });
    showState();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

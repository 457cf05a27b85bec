/* Small behaviours every page shares (charts have their own files beside this one).
   A static file, so a Content-Security-Policy never has to allow inline script. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function ready(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  // The navigation collapses behind a Menu button on narrow screens (CSS decides when).
  function navigation() {
    var toggle = document.querySelector(".nav-toggle");
    var menu = document.getElementById("nav-menu");
    if (!toggle || !menu) return;
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      menu.classList.toggle("open", open);
    });
  }

  // A form that came back with errors: its summary takes focus, so a screen reader reads
  // it and a keyboard user starts from its links to the fields.
  function focusErrorSummary(root) {
    var summary = (root || document).querySelector("[data-error-summary]");
    if (summary) summary.focus();
  }

  // Panels that poll (hx-trigger="every 2s") skip their poll while the tab is hidden. Done
  // here rather than as an hx-trigger filter, which htmx would run through eval: the
  // Content-Security-Policy allows no eval.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (document.visibilityState !== "visible" && elt && elt.hasAttribute &&
        elt.hasAttribute("data-poll-visible-only")) {
      event.preventDefault();
    }
  });

  // Back on the tab: a panel that listens for "poll-now" refreshes at once, rather than
  // showing figures from before the tab was hidden until its next tick.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible" || !window.htmx) return;
    document.querySelectorAll("[data-poll-visible-only]").forEach(function (elt) {
      window.htmx.trigger(elt, "poll-now");
    });
  });

  // A form marked data-reset-on-success (the store's hand-over box) is emptied and ready
  // for the next scan once the store's notice says the action worked.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form || !form.matches || !form.matches("form[data-reset-on-success]")) return;
    var notice = document.querySelector("#store-notice [data-notice]");
    var field = form.querySelector("input[type=text], input[type=search]");
    if (notice && notice.getAttribute("data-notice") === "success") form.reset();
    if (field) field.focus();
  });

  ready(function () {
    navigation();
    focusErrorSummary();
  });
})();

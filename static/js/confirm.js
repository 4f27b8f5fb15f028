// Confirmations (templates/includes/confirm.html), with no inline script (a CSP may come).
//
// A form, or a submit button, with data-confirm="<dialog id>" opens that dialog instead of
// submitting; the dialog's own form does the action (confirmed=yes) and its cancel button
// closes it. Without this script the form submits as it is and the server asks instead
// (a confirm page), so nothing that stops traffic happens in one click either way.
(function () {
  "use strict";

  function dialogFor(element) {
    var id = element && element.getAttribute && element.getAttribute("data-confirm");
    var dialog = id ? document.getElementById(id) : null;
    return dialog && typeof dialog.showModal === "function" ? dialog : null;
  }

  document.addEventListener(
    "submit",
    function (event) {
      var submitter = event.submitter;
      var trigger = submitter && submitter.hasAttribute("data-confirm") ? submitter : event.target;
      var dialog = dialogFor(trigger);
      if (!dialog || dialog.contains(event.target)) {
        return;
      }
      event.preventDefault();
      dialog.showModal();
    },
    true
  );

  // A confirmation the server rendered open (it asks again, or the page is one) becomes
  // modal: the page behind it cannot be changed while it asks.
  function upgrade() {
    var open = document.querySelectorAll("dialog[data-confirm-open]");
    for (var i = 0; i < open.length; i++) {
      if (typeof open[i].showModal === "function") {
        open[i].close();
        open[i].showModal();
      }
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", upgrade);
  } else {
    upgrade();
  }

  // A live region polled by htmx (the rollout page) holds its dialogs, so they name what
  // is true now; while one is open its region is not replaced under the reader, and it is
  // fetched again once the dialog closes.
  var skipped = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.querySelector && target.querySelector("dialog[open]")) {
      event.detail.shouldSwap = false;
      if (skipped.indexOf(target) < 0) {
        skipped.push(target);
      }
    }
  });
  document.addEventListener(
    "close",
    function (event) {
      if (!event.target || event.target.tagName !== "DIALOG" || !window.htmx) {
        return;
      }
      skipped = skipped.filter(function (region) {
        if (!region.contains(event.target) || !region.getAttribute("hx-get")) {
          return true;
        }
        window.htmx.ajax("GET", region.getAttribute("hx-get"), { target: region, swap: "outerHTML" });
        return false;
      });
    },
    true
  );
})();

// Small behaviours shared by every page. No inline scripts anywhere (CSP script-src 'self').
(function () {
  document.documentElement.classList.add("js");

  function init(root) {
    root.querySelectorAll("[data-conversations-toggle]").forEach(function (btn) {
      if (btn.dataset.bound) return;
      btn.dataset.bound = "1";
      var nav = btn.closest(".conversation-list");
      btn.addEventListener("click", function () {
        var open = btn.getAttribute("aria-expanded") !== "true";
        btn.setAttribute("aria-expanded", open ? "true" : "false");
        nav.classList.toggle("is-open", open);
      });
    });
    root.querySelectorAll("form[data-autosubmit] select").forEach(function (sel) {
      if (sel.dataset.bound) return;
      sel.dataset.bound = "1";
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
    // A table wider than the screen scrolls in its own box; let the keyboard reach and scroll it too.
    root.querySelectorAll(".table-scroll, figure").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) box.setAttribute("tabindex", "0");
    });
    root.querySelectorAll("[data-copy]").forEach(function (btn) {
      if (btn.dataset.bound) return;
      btn.dataset.bound = "1";
      btn.addEventListener("click", function () {
        var target = document.getElementById(btn.dataset.copy);
        var text = target ? (target.value || target.textContent) : btn.dataset.copyText;
        if (navigator.clipboard && text) {
          navigator.clipboard.writeText(text.trim()).then(function () { btn.textContent = "Copied"; });
        }
      });
    });
    root.querySelectorAll("[data-confirm]").forEach(function (el) {
      if (el.dataset.confirmBound) return;
      el.dataset.confirmBound = "1";
      var form = el.tagName === "FORM" ? el : el.form;
      if (!form) return;
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(el.dataset.confirm)) ev.preventDefault();
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (ev) { init(ev.target); });
})();

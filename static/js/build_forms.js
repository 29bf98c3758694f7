// Build page: custom assertions and deletion through the JSON API (session cookie + CSRF header).
// No inline scripts (CSP script-src 'self').
(function () {
  "use strict";

  function csrf() {
    var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    return headers["X-CSRFToken"] || "";
  }

  function call(method, url, body) {
    var init = { method: method, credentials: "same-origin",
                 headers: { "X-CSRFToken": csrf(), "Accept": "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (resp) {
      if (resp.status === 204) return { ok: true, body: {} };
      return resp.json().catch(function () { return {}; }).then(function (json) { return { ok: resp.ok, body: json }; });
    });
  }

  function message(result, fallback) {
    return (result.body && result.body.error && result.body.error.message) || fallback;
  }

  // "port_open:port=22,protocol=tcp" -> {type: "port_open", params: {port: 22, protocol: "tcp"}}
  function parseLine(line, number) {
    var colon = line.indexOf(":");
    var type = (colon === -1 ? line : line.slice(0, colon)).trim();
    if (!/^[a-z_]+$/.test(type)) throw new Error("Line " + number + ": start with the check's type, e.g. port_open:port=22");
    var params = {};
    if (colon !== -1) {
      line.slice(colon + 1).split(",").forEach(function (pair) {
        if (!pair.trim()) return;
        var eq = pair.indexOf("=");
        if (eq === -1) throw new Error("Line " + number + ": '" + pair.trim() + "' needs the form name=value");
        var value = pair.slice(eq + 1).trim();
        params[pair.slice(0, eq).trim()] = /^\d+$/.test(value) ? parseInt(value, 10) : value;
      });
    }
    return { type: type, params: params };
  }

  function init() {
    var root = document.getElementById("build-manage");
    if (!root || root.dataset.bound) return;
    root.dataset.bound = "1";
    var api = root.dataset.buildApi;

    var form = root.querySelector("[data-assertions-form]");
    if (form) {
      var error = form.querySelector("[data-form-error]");
      var textarea = form.querySelector("textarea");
      var show = function (text) {
        error.textContent = text || "";
        error.hidden = !text;
        if (text) textarea.setAttribute("aria-invalid", "true"); else textarea.removeAttribute("aria-invalid");
      };
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var assertions;
        try {
          assertions = textarea.value.split("\n").map(function (l) { return l.trim(); })
            .map(function (l, i) { return l ? parseLine(l, i + 1) : null; }).filter(Boolean);
        } catch (err) { show(err.message); return; }
        if (!assertions.length) { show("Write at least one check, e.g. port_open:port=22"); return; }
        show("");
        var button = form.querySelector("button[type=submit]");
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
        call("POST", api + "/tests", { assertions: assertions }).then(function (result) {
          button.disabled = false;
          button.removeAttribute("aria-busy");
          if (!result.ok) { show(message(result, "The checks could not be queued.")); return; }
          window.location.reload();
        }).catch(function () {
          button.disabled = false;
          button.removeAttribute("aria-busy");
          show("The checks could not be queued (network error).");
        });
      });
    }

    var del = root.querySelector("[data-delete-build]");
    if (del) {
      var delError = root.querySelector("[data-delete-error]");
      del.addEventListener("click", function () {
        if (!window.confirm(del.dataset.confirmText)) return;
        del.disabled = true;
        call("DELETE", api).then(function (result) {
          if (!result.ok) {
            del.disabled = false;
            delError.textContent = message(result, "The build could not be deleted.");
            delError.hidden = false;
            return;
          }
          window.location.assign(root.dataset.buildsUrl);
        }).catch(function () {
          del.disabled = false;
          delError.textContent = "The build could not be deleted (network error).";
          delError.hidden = false;
        });
      });
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();

// Chat page: stream the assistant's reply, refresh the recipe and versions, start a build.
// No inline scripts (CSP script-src 'self'). Without JS the forms post and the page re-renders.
//
// The reply comes from GET /api/chat/stream as Server-Sent Events (the session cookie authenticates;
// csrf_token in the URL proves the page sent it): `delta` text chunks, `recipe`, `done`, or `error`.
// EventSource reconnects by itself after a stream ends, and a reconnect would post the message again,
// so every path closes the source explicitly.
(function () {
  "use strict";

  var MAX_CHARS = 4000;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function bubble(role, text) {
    var article = el("article", "msg msg-" + role);
    var header = el("header");
    header.appendChild(el("strong", "", role === "user" ? "You" : "Kiln"));
    article.appendChild(header);
    var body = el("div", "msg-text", text || "");
    article.appendChild(body);
    return { article: article, body: body };
  }

  function ChatForm(form) {
    this.form = form;
    this.textarea = form.querySelector("textarea[name=message]");
    this.error = form.querySelector("[data-chat-error]");
    this.send = form.querySelector("[data-chat-send]");
    this.thread = document.getElementById("message-thread");
    this.source = null;
  }

  ChatForm.prototype.showError = function (message) {
    if (!this.error) return;
    this.error.textContent = message || "";
    this.error.hidden = !message;
    if (message) this.textarea.setAttribute("aria-invalid", "true");
    else this.textarea.removeAttribute("aria-invalid");
  };

  ChatForm.prototype.busy = function (on) {
    this.send.disabled = on;
    this.send.setAttribute("aria-busy", on ? "true" : "false");
    this.form.classList.toggle("is-streaming", on);
  };

  ChatForm.prototype.streamUrl = function (message) {
    var params = new URLSearchParams();
    var conversationId = this.form.dataset.conversationId;
    if (conversationId) params.set("conversationId", conversationId);
    params.set("message", message);
    params.set("csrf_token", this.form.dataset.csrf || "");
    return this.form.dataset.streamUrl + "?" + params.toString();
  };

  ChatForm.prototype.submit = function (ev) {
    var message = this.textarea.value.trim();
    if (!window.EventSource) return; // the plain form post takes over
    ev.preventDefault();
    if (this.source) return;
    if (!message) { this.showError("Write a message first."); return; }
    if (message.length > MAX_CHARS) { this.showError("The message is longer than " + MAX_CHARS + " characters."); return; }
    this.showError("");
    this.stream(message);
  };

  ChatForm.prototype.stream = function (message) {
    var self = this;
    var empty = this.thread && this.thread.querySelector("[data-thread-empty]");
    if (empty) empty.remove();
    if (this.thread) this.thread.appendChild(bubble("user", message).article);
    var reply = bubble("assistant", "");
    reply.article.classList.add("is-streaming");
    if (this.thread) this.thread.appendChild(reply.article);
    reply.article.scrollIntoView({ block: "nearest" });
    this.busy(true);

    var source = new EventSource(this.streamUrl(message));
    var finished = false;
    this.source = source;

    function stop() {
      source.close();
      self.source = null;
      self.busy(false);
      reply.article.classList.remove("is-streaming");
    }

    source.addEventListener("delta", function (e) {
      reply.body.textContent += e.data;
    });
    source.addEventListener("recipe", function (e) {
      var data = JSON.parse(e.data);
      if (data.changed) document.body.dispatchEvent(new CustomEvent("recipe-changed", { detail: data }));
    });
    source.addEventListener("done", function (e) {
      finished = true;
      stop();
      var data = JSON.parse(e.data);
      self.textarea.value = "";
      reply.article.dataset.messageId = data.messageId;
      if (!self.form.dataset.conversationId) {
        // The first message started a conversation: open its page (thread, recipe, versions).
        window.location.assign(self.form.dataset.detailUrl.replace("__ID__", data.conversationId));
        return;
      }
      self.refreshThread();
    });
    source.addEventListener("error", function (e) {
      if (finished) return;
      finished = true;
      stop();
      var text = "The assistant could not answer. Please try again.";
      if (e.data) {
        try { text = JSON.parse(e.data).error.message || text; } catch (_) { /* keep the generic text */ }
      }
      reply.article.remove();
      self.showError(text);
    });
  };

  // The server-rendered thread replaces the streamed bubbles, so the markup exists once.
  ChatForm.prototype.refreshThread = function () {
    if (!window.htmx || !this.thread || !this.thread.dataset.threadUrl) return;
    window.htmx.ajax("GET", this.thread.dataset.threadUrl, { target: "#message-thread", swap: "outerHTML" });
  };

  function csrfToken() {
    var form = document.getElementById("chat-form");
    if (form && form.dataset.csrf) return form.dataset.csrf;
    var input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  function BuildPanel(panel) {
    this.panel = panel;
    this.button = panel.querySelector("[data-build-start]");
    this.status = panel.querySelector("[data-build-status]");
    this.progress = panel.querySelector("[data-build-progress]");
  }

  BuildPanel.prototype.start = function () {
    var self = this;
    this.button.disabled = true;
    this.button.setAttribute("aria-busy", "true");
    this.status.textContent = "Starting a build…";
    fetch(this.panel.dataset.buildUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ conversationId: this.panel.dataset.conversationId })
    }).then(function (resp) {
      return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
    }).then(function (result) {
      self.button.disabled = false;
      self.button.removeAttribute("aria-busy");
      if (!result.ok) {
        self.status.textContent = (result.body.error && result.body.error.message) || "The build could not start.";
        return;
      }
      self.show(result.body.id || result.body.buildId, result.body.number);
    }).catch(function () {
      self.button.disabled = false;
      self.button.removeAttribute("aria-busy");
      self.status.textContent = "The build could not start (network error).";
    });
  };

  BuildPanel.prototype.show = function (buildId, number) {
    var detail = this.panel.dataset.buildDetailUrl.replace("__ID__", buildId);
    this.status.textContent = "";
    var link = el("a", "", "Build" + (number ? " #" + number : "") + " started: open it");
    link.href = detail;
    this.status.appendChild(link);
    if (window.htmx) {
      // htmx asks the build page for its live fragment: the progress partial, which polls itself.
      window.htmx.ajax("GET", detail, { target: this.progress, swap: "innerHTML" });
    }
  };

  function init() {
    // The newest message is what a person came back for: open the thread scrolled to its end.
    var thread = document.getElementById("message-thread");
    if (thread) thread.scrollTop = thread.scrollHeight;
    var form = document.getElementById("chat-form");
    if (form && !form.dataset.bound) {
      form.dataset.bound = "1";
      var chat = new ChatForm(form);
      form.addEventListener("submit", function (ev) { chat.submit(ev); });
      // Enter sends, Shift+Enter makes a new line.
      chat.textarea.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          form.requestSubmit();
        }
      });
    }
    var panel = document.getElementById("build-panel");
    if (panel && !panel.dataset.bound) {
      panel.dataset.bound = "1";
      var build = new BuildPanel(panel);
      build.button.addEventListener("click", function () { build.start(); });
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();

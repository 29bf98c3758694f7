// Build page: the live log viewer. No inline scripts (CSP script-src 'self').
//
// The log streams over SSE (EventSource sends the session cookie). When EventSource is missing or the
// stream cannot be opened, the viewer polls the JSON logs endpoint with ?after=<seq> every 2 s instead,
// the same way the progress partial polls: the page keeps moving without the stream.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var MAX_STREAM_ERRORS = 3;
  var RECONNECT_MS = 1000;
  var TERMINAL = ["succeeded", "failed", "cancelled"];

  function LogViewer(root) {
    this.root = root;
    this.lines = root.querySelector("[data-log-lines]");
    this.empty = root.querySelector("[data-log-empty]");
    this.state = root.querySelector("[data-log-state]");
    this.follow = root.querySelector("[data-log-follow]");
    this.jump = root.querySelector("[data-log-jump]");
    this.after = parseInt(root.dataset.after || "0", 10) || 0;
    this.streamUrl = root.dataset.streamUrl;
    this.pollUrl = root.dataset.pollUrl;
    this.source = null;
    this.timer = null;
    this.streamErrors = 0;
    this.mode = "idle";
  }

  LogViewer.prototype.start = function () {
    var self = this;
    if (this.follow) {
      this.follow.addEventListener("change", function () { if (self.follow.checked) self.scrollToEnd(); });
    }
    if (this.lines) {
      // Scrolling up to read stops following; scrolling back to the end resumes it.
      this.lines.addEventListener("scroll", function () {
        if (!self.follow) return;
        var atEnd = self.lines.scrollHeight - self.lines.scrollTop - self.lines.clientHeight < 8;
        if (self.follow.checked !== atEnd && self.mode !== "idle") self.follow.checked = atEnd;
      });
    }
    if (this.jump) {
      this.jump.addEventListener("click", function () { self.jumpToFirstError(); });
    }
    this.refreshJump();
    this.scrollToEnd();
    if (this.root.dataset.live !== "true") {
      this.setState("complete");
      return;
    }
    if (window.EventSource && this.streamUrl) {
      this.openStream();
    } else {
      this.startPolling();
    }
  };

  LogViewer.prototype.setState = function (text) {
    this.mode = text;
    if (this.state) this.state.textContent = {
      streaming: "live",
      polling: "live (polling)",
      complete: "complete",
      idle: ""
    }[text] || text;
  };

  LogViewer.prototype.openStream = function () {
    var self = this;
    var url = this.streamUrl + (this.streamUrl.indexOf("?") < 0 ? "?" : "&") + "after=" + this.after;
    var source;
    try {
      source = new EventSource(url);
    } catch (err) {
      this.startPolling();
      return;
    }
    this.source = source;
    this.setState("streaming");
    source.addEventListener("open", function () { self.streamErrors = 0; });
    source.addEventListener("log", function (ev) {
      self.streamErrors = 0;
      try { self.append([JSON.parse(ev.data)]); } catch (err) { /* a malformed line is skipped, not fatal */ }
    });
    source.addEventListener("status", function (ev) {
      try { self.showStatus(JSON.parse(ev.data)); } catch (err) { /* ignore */ }
    });
    source.addEventListener("done", function () {
      self.finish();
    });
    // The build was not started in time: the server ended the stream; polling picks up a later start.
    source.addEventListener("end", function () {
      source.close();
      self.source = null;
      self.startPolling();
    });
    source.addEventListener("error", function () {
      // Reconnect from the last line shown (our own ?after=, not the browser's retry from the first URL),
      // a few times; then fall back to polling.
      source.close();
      if (self.source !== source) return;
      self.source = null;
      if (self.mode === "complete") return;
      self.streamErrors += 1;
      if (self.streamErrors >= MAX_STREAM_ERRORS) {
        self.startPolling();
        return;
      }
      window.setTimeout(function () {
        if (self.mode !== "complete" && !self.source && !self.timer) self.openStream();
      }, RECONNECT_MS * self.streamErrors);
    });
  };

  LogViewer.prototype.startPolling = function () {
    var self = this;
    if (this.timer || !this.pollUrl) return;
    this.setState("polling");
    var tick = function () {
      var url = self.pollUrl + (self.pollUrl.indexOf("?") < 0 ? "?" : "&") + "after=" + self.after;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (resp) { return resp.ok ? resp.json() : null; })
        .then(function (body) {
          if (body && body.lines) self.append(body.lines);
          if (self.buildFinished()) {
            self.finish();
          } else {
            self.timer = window.setTimeout(tick, POLL_MS);
          }
        })
        .catch(function () { self.timer = window.setTimeout(tick, POLL_MS); });
    };
    tick();
  };

  // The progress partial carries the status the server last rendered (htmx keeps it current).
  LogViewer.prototype.buildFinished = function () {
    var progress = document.getElementById("build-progress");
    return !!(progress && TERMINAL.indexOf(progress.dataset.status) >= 0);
  };

  LogViewer.prototype.finish = function () {
    if (this.source) { this.source.close(); this.source = null; }
    if (this.timer) { window.clearTimeout(this.timer); this.timer = null; }
    this.setState("complete");
    // The progress partial refreshes at once instead of waiting for its next poll.
    document.body.dispatchEvent(new CustomEvent("kiln:build-done", { bubbles: true }));
  };

  LogViewer.prototype.append = function (lines) {
    var self = this;
    if (!this.lines || !lines.length) return;
    var fragment = document.createDocumentFragment();
    lines.forEach(function (line) {
      var seq = parseInt(line.seq, 10);
      if (!isNaN(seq)) {
        if (seq <= self.after) return; // a resumed stream never shows a line twice
        self.after = seq;
      }
      fragment.appendChild(self.render(line));
    });
    if (!fragment.childNodes.length) return;
    this.lines.appendChild(fragment);
    this.root.dataset.after = String(this.after);
    if (this.empty) this.empty.hidden = true;
    this.refreshJump();
    if (this.follow && this.follow.checked) this.scrollToEnd();
  };

  LogViewer.prototype.render = function (line) {
    var level = String(line.level || "info").toLowerCase();
    var stage = line.stage || (line.metadata && line.metadata.stage) || "";
    var el = document.createElement("span");
    el.className = "log-line log-" + level.replace(/[^a-z]/g, "");
    el.dataset.seq = String(line.seq);
    el.dataset.level = level;
    var time = document.createElement("span");
    time.className = "log-time";
    time.textContent = shortTime(line.timestamp);
    var where = document.createElement("span");
    where.className = "log-stage";
    where.textContent = stage;
    el.appendChild(time);
    el.appendChild(where);
    el.appendChild(document.createTextNode(String(line.message == null ? "" : line.message)));
    el.appendChild(document.createTextNode("\n"));
    return el;
  };

  LogViewer.prototype.firstError = function () {
    return this.lines ? this.lines.querySelector('[data-level="error"], [data-level="critical"]') : null;
  };

  LogViewer.prototype.refreshJump = function () {
    if (this.jump) this.jump.disabled = !this.firstError();
  };

  LogViewer.prototype.jumpToFirstError = function () {
    var line = this.firstError();
    if (!line) return;
    if (this.follow) this.follow.checked = false;
    this.lines.querySelectorAll(".log-focus").forEach(function (el) { el.classList.remove("log-focus"); });
    line.classList.add("log-focus");
    this.lines.scrollTop = Math.max(0, line.offsetTop - 16); // the log box is position:relative
  };

  LogViewer.prototype.scrollToEnd = function () {
    if (this.lines && (!this.follow || this.follow.checked)) this.lines.scrollTop = this.lines.scrollHeight;
  };

  // The SSE status event moves the bar at once; the progress partial's own poll then confirms it.
  LogViewer.prototype.showStatus = function (body) {
    var box = document.getElementById("build-progress");
    if (!box || !body) return;
    // Only a running build's bar moves here; a queued one stays indeterminate, a finished one is the
    // server's to draw (the partial re-renders itself).
    if (body.status !== "building" && body.status !== "testing") return;
    var bar = box.querySelector("progress");
    var pct = body.progress && typeof body.progress.percentage === "number" ? body.progress.percentage : null;
    if (bar && pct !== null) bar.value = pct;
    var label = box.querySelector("[data-progress-percent]");
    if (label && pct !== null) label.textContent = Math.round(pct) + "%";
    var stage = box.querySelector("[data-progress-stage]");
    if (stage && body.stageName) stage.textContent = body.stageName;
  };

  function shortTime(ts) {
    if (!ts) return "";
    var m = /T(\d\d:\d\d:\d\d)/.exec(String(ts));
    return m ? m[1] : String(ts);
  }

  function init(root) {
    root.querySelectorAll("[data-log-viewer]").forEach(function (el) {
      if (el.dataset.bound) return;
      el.dataset.bound = "1";
      new LogViewer(el).start();
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (ev) { init(ev.target); });
})();

// idledger company console: Copy buttons, times in the browser's zone, drag and drop of the
// metadata file, and the live state of the setup page. Everything works without it.
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.textContent = d.toLocaleString();
        t.title = t.getAttribute("datetime");
      }
    });
  }

  function timeEl(iso) {
    var t = document.createElement("time");
    t.setAttribute("datetime", iso);
    t.textContent = iso;
    localTimes({ querySelectorAll: function () { return [t]; } });
    return t;
  }

  function setText(id, parts) {
    var el = document.getElementById(id);
    if (!el) { return; }
    el.textContent = "";
    parts.forEach(function (p) { el.append(p); });
  }

  function copyButtons() {
    document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () {
        var src = document.getElementById(b.getAttribute("data-copy"));
        var text = src.value || src.textContent;
        var done = function () {
          b.textContent = "Copied";
          setTimeout(function () { b.textContent = "Copy"; }, 2000);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { src.select(); document.execCommand("copy"); done(); });
        } else {
          src.select();
          document.execCommand("copy");
          done();
        }
      });
    });
  }

  function dropzone() {
    var zone = document.querySelector(".dropzone");
    if (!zone) { return; }
    var input = zone.querySelector("input[type=file]");
    ["dragenter", "dragover"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (ev) {
      zone.addEventListener(ev, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
      }
    });
  }

  function showStatus(s) {
    setText("live-users", [String(s.users)]);
    setText("live-active", [String(s.activeUsers)]);
    setText("live-inactive", [String(s.inactiveUsers)]);
    setText("live-groups", [String(s.groups)]);
    var warn = document.getElementById("live-admin-warning");
    if (warn) { warn.hidden = s.adminPresent; }
    if (s.connectedAt) {
      setText("live-connection", ["Connected: last request from Microsoft Entra at ", timeEl(s.connectedAt)]);
      setText("live-scim-state", ["Done"]);
    }
    if (!s.lastCycle) {
      setText("live-cycle", [s.cyclesCounting ? "being counted…" : "none yet"]);
    } else {
      var c = s.lastCycle;
      setText("live-cycle", ["#" + c.number + ", started ", timeEl(c.start), ": " + c.requests + " requests, " + s.lastCycleFailures + " failed"]);
    }
    var t = s.testSignIn;
    if (t && document.getElementById("live-signin")) {
      if (!t.done) {
        setText("live-signin", ["Test sign-in under way in the other tab…"]);
      } else if (t.ok) {
        setText("live-signin", ["Test sign-in succeeded: signed in as " + t.nameId + " at ", timeEl(t.at), "."]);
      } else {
        setText("live-signin", ["Test sign-in refused: " + t.reason + (t.nameId ? " (NameID " + t.nameId + ")" : "") + "."]);
      }
    }
  }

  function poll() {
    var live = document.getElementById("live");
    if (!live) { return; }
    var url = live.getAttribute("data-status-url");
    var tick = function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) { if (s) { showStatus(s); } })
        .catch(function () {})
        .finally(function () { setTimeout(tick, document.hidden ? 10000 : 2000); });
    };
    setTimeout(tick, 2000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    copyButtons();
    dropzone();
    poll();
  });
})();

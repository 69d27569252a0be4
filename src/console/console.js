// Follows a running run's log as the run saves it: polls the run's JSON
// twin (same origin, as the CSP allows) and reloads when it has ended.
"use strict";
(function () {
  var log = document.getElementById("log");
  if (!log || log.getAttribute("data-follow") !== "true") {
    return;
  }
  var src = log.getAttribute("data-src");
  var status = document.getElementById("status");
  function poll() {
    fetch(src, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("HTTP " + r.status);
        }
        return r.json();
      })
      .then(function (run) {
        var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.textContent = run.log || "";
        if (atEnd) {
          log.scrollTop = log.scrollHeight;
        }
        if (status) {
          status.textContent = run.status;
        }
        if (run.status === "running") {
          setTimeout(poll, 2000);
        } else {
          window.location.reload();
        }
      })
      .catch(function () {
        setTimeout(poll, 5000);
      });
  }
  setTimeout(poll, 2000);
})();

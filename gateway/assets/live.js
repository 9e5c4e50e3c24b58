// Live updates for the dashboard (hand-written; a file, since the CSP allows no inline
// script). The element with `data-live-events` listens to that URL (Server-Sent Events, the
// session's tenant's events); when something changes it fetches `data-live-refresh` and puts
// the element of the same id from the answer in its place. Without JavaScript, or without
// EventSource, the page is as the server sent it (the overview still polls through htmx).
(function () {
  "use strict";
  var first = document.querySelector("[data-live-events]");
  if (!first || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var id = first.id;
  var source = new EventSource(first.getAttribute("data-live-events"));
  var timer = null;
  var busy = false;
  var again = false;

  function refresh() {
    timer = null;
    if (busy) {
      again = true;
      return;
    }
    var current = document.getElementById(id);
    if (!current) {
      return;
    }
    busy = true;
    fetch(current.getAttribute("data-live-refresh"), { credentials: "same-origin" })
      .then(function (r) {
        if (r.redirected && new URL(r.url).pathname === "/ui/login") {
          window.location.assign("/ui/login");
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (text) {
        if (text === null) {
          return;
        }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var next = doc.getElementById(id);
        var now = document.getElementById(id);
        if (next && now) {
          now.replaceWith(document.importNode(next, true));
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          schedule();
        }
      });
  }

  function schedule() {
    if (timer === null) {
      timer = window.setTimeout(refresh, 300);
    }
  }

  source.addEventListener("change", schedule);
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();

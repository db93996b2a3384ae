// Live updates: one Server-Sent Events stream per page. The server sends
// "change" only when the controller's state changed; the page then fetches
// itself once and swaps in the fresh main content. Nothing polls.
(function () {
  "use strict";
  if (!document.body.hasAttribute("data-live") || !window.EventSource || !window.fetch) return;
  var busy = false, again = false;
  var status = document.getElementById("live-status");
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.querySelector("[data-live-region]");
        var cur = document.querySelector("[data-live-region]");
        if (!fresh || !cur) return;
        // Keep keyboard focus where it was when the element still exists.
        var focusID = document.activeElement && cur.contains(document.activeElement) ? document.activeElement.id : "";
        cur.replaceWith(fresh);
        if (focusID && document.getElementById(focusID)) document.getElementById(focusID).focus();
        if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
        document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || "0") + 1));
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  var es = new EventSource("/events");
  es.addEventListener("change", refresh);
  window.addEventListener("pagehide", function () { es.close(); });
})();

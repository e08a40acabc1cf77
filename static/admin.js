// Progressive enhancement: an element with an id and data-refresh="SECONDS" is reloaded in
// place from the same address every SECONDS seconds for as long as the server keeps marking it
// so (a run that is queued or running, a list with such runs, the workers page). Forms, scroll
// position and the rest of the page stay as they are. Without JavaScript the pages work the
// same and a <noscript> refresh reloads them whole.
(function () {
  "use strict";

  function later(element) {
    var seconds = Number(element.getAttribute("data-refresh")) || 5;
    window.setTimeout(function () { refresh(element.id); }, seconds * 1000);
  }

  function refresh(id) {
    var current = document.getElementById(id);
    if (!current) return;
    if (document.hidden) { later(current); return; }
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) {
        // Logged out, or a server error: leave the page as it is.
        if (!response.ok || response.redirected) return null;
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        if (!fresh) return;
        current.replaceWith(fresh);
        if (fresh.hasAttribute("data-refresh")) later(fresh);
      })
      .catch(function () { later(current); });
  }

  document.querySelectorAll("[data-refresh][id]").forEach(later);
})();

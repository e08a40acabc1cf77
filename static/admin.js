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

// The schedule form fits what is chosen: only the chosen task's parameters (data-task) and the
// chosen repeat mode's fields (data-spec, a list of modes) show, and the preview of the timing
// (in words, with the next fire times) is fetched again from data-preview-url a moment after
// the timing is changed. The server renders every field and checks every value: without
// JavaScript all fields show and the "Preview fire times" button previews.
(function () {
  "use strict";

  var form = document.getElementById("schedule-form");
  if (!form) return;
  var task = form.querySelector("#id_task_kind");
  var timingNames = ["spec_kind", "cron_expr", "timezone", "every", "every_unit", "once_at", "start_at", "end_at"];

  function chosenSpec() {
    var checked = form.querySelector("input[name=spec_kind]:checked");
    return checked ? checked.value : "";
  }

  // A field the server found wrong stays in sight whatever is chosen.
  function wrong(group) {
    return group.classList.contains("has-error") || group.querySelector(".has-error") !== null;
  }

  function showChosen() {
    var kind = task ? task.value : "";
    form.querySelectorAll("[data-task]").forEach(function (group) {
      group.hidden = group.getAttribute("data-task") !== kind && !wrong(group);
    });
    var spec = chosenSpec();
    form.querySelectorAll("[data-spec]").forEach(function (group) {
      group.hidden = group.getAttribute("data-spec").split(" ").indexOf(spec) < 0 && !wrong(group);
    });
  }

  var preview = document.getElementById("preview");
  var url = form.getAttribute("data-preview-url");
  var timer = null;
  var asked = 0;

  function timingQuery() {
    var params = new URLSearchParams();
    timingNames.forEach(function (name) {
      if (name === "spec_kind") {
        params.append(name, chosenSpec());
        return;
      }
      var field = form.elements.namedItem(name);
      if (field) params.append(name, field.value);
    });
    return params.toString();
  }

  function refreshPreview() {
    if (!preview || !url) return;
    // Only the answer to the latest question is shown (answers may come back out of order).
    var number = ++asked;
    preview.setAttribute("aria-busy", "true");
    fetch(url + "?" + timingQuery(), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        // 422 carries the messages; a redirect means the session ended: leave it as it is.
        if (response.redirected || !(response.ok || response.status === 422)) return null;
        return response.text();
      })
      .then(function (html) {
        if (number !== asked) return;
        preview.removeAttribute("aria-busy");
        if (html === null) return;
        var fragment = new DOMParser().parseFromString(html, "text/html").body;
        preview.replaceChildren.apply(preview, Array.from(fragment.childNodes));
      })
      .catch(function () {
        if (number === asked) preview.removeAttribute("aria-busy");
      });
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refreshPreview, 300);
  }

  form.addEventListener("change", function (event) {
    var name = event.target.name;
    if (name === "task_kind" || name === "spec_kind") showChosen();
    if (timingNames.indexOf(name) >= 0) later();
  });
  form.addEventListener("input", function (event) {
    if (timingNames.indexOf(event.target.name) >= 0) later();
  });
  showChosen();
})();

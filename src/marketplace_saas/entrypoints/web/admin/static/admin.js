// The console's only script: load the health checks after the page, confirm decisions.
(function () {
  "use strict";
  var health = document.getElementById("health");
  if (health && health.dataset.src && window.fetch) {
    fetch(health.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var table = doc.querySelector("table.health");
        if (table) { health.replaceChildren(document.importNode(table, true)); }
      })
      .catch(function () { health.textContent = "The health checks could not be loaded."; });
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    var button = form.querySelector("button[type=submit]");
    if (button) { setTimeout(function () { button.disabled = true; }, 0); }
  });
})();

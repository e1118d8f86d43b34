/* mastoaudit HTML report: severity and status filters, and every section open when printing.
   It reads only the page's own data-* attributes; the report holds no data inside this script.
   Without JavaScript the filters stay hidden and every result is shown. */
(function () {
  "use strict";
  var doc = document;
  doc.documentElement.classList.add("js");
  var form = doc.getElementById("filters");
  var counter = doc.getElementById("filter-count");
  if (!form) { return; }
  var boxes = Array.prototype.slice.call(form.querySelectorAll("input[type=checkbox]"));
  var findings = Array.prototype.slice.call(doc.querySelectorAll(".finding"));
  // "… and N more": hidden with the results they stand for, not counted as one.
  var omitted = Array.prototype.slice.call(doc.querySelectorAll(".omitted"));
  var groups = Array.prototype.slice.call(doc.querySelectorAll(".group"));

  function apply() {
    var off = {};
    boxes.forEach(function (box) {
      if (!box.checked) { off[box.name + ":" + box.value] = true; }
    });
    var shown = 0;
    findings.forEach(function (el) {
      var hide = off["severity:" + el.getAttribute("data-severity")] ||
        off["status:" + el.getAttribute("data-status")];
      el.classList.toggle("is-hidden", !!hide);
      if (!hide) { shown += 1; }
    });
    omitted.forEach(function (el) {
      el.classList.toggle("is-hidden", !!(off["severity:" + el.getAttribute("data-severity")] ||
        off["status:" + el.getAttribute("data-status")]));
    });
    groups.forEach(function (group) {
      group.classList.toggle("is-hidden", !group.querySelector(".finding:not(.is-hidden)"));
    });
    if (counter) {
      var total = parseInt(form.getAttribute("data-total") || "0", 10);
      counter.textContent = shown + " of " + findings.length + " results shown" +
        (total > findings.length ? " (" + total + " in all: the JSON report has every one)" : "");
    }
  }

  form.addEventListener("change", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); });

  // Print everything expanded; put the reader's open/closed choices back afterwards.
  var wasOpen = [];
  window.addEventListener("beforeprint", function () {
    var all = doc.querySelectorAll("details");
    wasOpen = Array.prototype.map.call(all, function (d) { return d.open; });
    Array.prototype.forEach.call(all, function (d) { d.open = true; });
  });
  window.addEventListener("afterprint", function () {
    Array.prototype.forEach.call(doc.querySelectorAll("details"), function (d, i) {
      if (i < wasOpen.length) { d.open = wasOpen[i]; }
    });
  });

  apply();
}());

/* mastoaudit HTML report: severity and status filters over the detail entries, and the open
   findings expanded when printing. It reads only the page's own data-* attributes; the report holds
   no data inside this script. Without JavaScript the filters stay hidden and every entry is there. */
(function () {
  "use strict";
  var doc = document;
  doc.documentElement.classList.add("js");
  var form = doc.getElementById("filters");
  var counter = doc.getElementById("filter-count");
  var entries = Array.prototype.slice.call(doc.querySelectorAll("#details .entry"));
  var boxes = form ? Array.prototype.slice.call(form.querySelectorAll("input[type=checkbox]")) : [];

  function count(el) {
    return parseInt(el.getAttribute("data-count"), 10) || 1;
  }

  function apply() {
    var off = {};
    boxes.forEach(function (box) {
      if (!box.checked) { off[box.name + ":" + box.value] = true; }
    });
    var shown = 0;
    var total = 0;
    entries.forEach(function (el) {
      var hide = off["severity:" + el.getAttribute("data-severity")] ||
        off["status:" + el.getAttribute("data-status")];
      el.classList.toggle("is-hidden", !!hide);
      total += count(el);
      if (!hide) { shown += count(el); }
    });
    // A folded list (passes, skips), a skip reason or a component with nothing left to show goes too.
    Array.prototype.forEach.call(doc.querySelectorAll("#details .skip-reason, #details .folded, #details .group"),
      function (box) {
        box.classList.toggle("is-hidden", !box.querySelector(".entry:not(.is-hidden)"));
      });
    if (counter) {
      counter.textContent = shown + " of " + total + " results shown";
    }
  }

  if (form) {
    form.addEventListener("change", apply);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    apply();
  }

  // Printing (browsers without ::details-content): open what needs attention, then put the
  // reader's open/closed choices back.
  var wasOpen = [];
  window.addEventListener("beforeprint", function () {
    var all = doc.querySelectorAll("details");
    wasOpen = Array.prototype.map.call(all, function (d) { return d.open; });
    Array.prototype.forEach.call(doc.querySelectorAll("details.entry.attention, details.more-actions"),
      function (d) { d.open = true; });
  });
  window.addEventListener("afterprint", function () {
    Array.prototype.forEach.call(doc.querySelectorAll("details"), function (d, i) {
      if (i < wasOpen.length) { d.open = wasOpen[i]; }
    });
  });
}());

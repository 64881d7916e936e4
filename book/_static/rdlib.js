// A table wider than the column scrolls inside its box; mark the box so that rdlib.css shows a hint above it
// (phones hide scroll bars). Figures are held at a readable width the same way, and wide equations get the hint.
// Re-checked once equations are typeset and when the window is resized.
(function () {
  var BOXES = "div.cell_output .output, .pst-scrollable-table-container";
  function scrolls(box) {
    var overflow = getComputedStyle(box).overflowX;
    return (overflow === "auto" || overflow === "scroll") && box.scrollWidth > box.clientWidth + 1;
  }
  function mark() {
    document.querySelectorAll(BOXES).forEach(function (box) {
      var outer = box.parentElement && box.parentElement.closest(BOXES);
      box.classList.toggle("rdlib-wide", scrolls(box) && !(outer && scrolls(outer)));
    });
  }
  // A figure (an image a cell printed) sits in its own box; where the column is narrower than 75 % of the image
  // (a phone), the image keeps that width and the box scrolls, marked for rdlib.css's hint. The same threshold is
  // the browser test's MIN_FIGURE_SCALE.
  var MIN_FIGURE_SCALE = 0.75;
  function figures() {
    document.querySelectorAll("div.cell_output img").forEach(function (img) {
      if (img.parentElement.classList.contains("rdlib-figure")) return;
      var box = document.createElement("div");
      box.className = "rdlib-figure";
      img.parentElement.insertBefore(box, img);
      box.appendChild(img);
    });
    document.querySelectorAll("div.rdlib-figure > img").forEach(function (img) {
      var least = Math.round(img.naturalWidth * MIN_FIGURE_SCALE), column = img.parentElement.clientWidth;
      var narrow = img.naturalWidth > 0 && column > 0 && least > column;   // a hidden output has no column yet
      img.style.width = narrow ? least + "px" : "";
      img.style.maxWidth = narrow ? "none" : "";
      img.parentElement.classList.toggle("rdlib-wide-figure", narrow);
    });
  }
  // An equation wider than the column scrolls inside its MathJax box (the theme's and rdlib.css's rules); its
  // box (div.math or span.math) is marked for the hint and a line of its own.
  function equations() {
    var boxes = Array.prototype.filter.call(document.querySelectorAll("div.math, span.math"), function (box) {
      return box.querySelector("mjx-container");
    });
    boxes.forEach(function (box) { box.classList.remove("rdlib-wide-math"); });   // measured at their natural layout,
    var wide = boxes.map(function (box) {                                         // all at once (one re-layout)
      var eq = box.querySelector("mjx-container");
      return eq.scrollWidth > eq.clientWidth + 1 || box.scrollWidth > box.clientWidth + 1;
    });
    boxes.forEach(function (box, i) { box.classList.toggle("rdlib-wide-math", wide[i]); });
  }
  function again() { figures(); equations(); mark(); }
  window.addEventListener("load", function () {
    again();
    // typeset equations and late fonts can widen a table after load
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) MathJax.startup.promise.then(again);
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(again);
  });
  window.addEventListener("resize", again);
})();

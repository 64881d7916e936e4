// A table wider than the column scrolls inside its box; mark the box so that rdlib.css shows a hint above it
// (phones hide scroll bars). Re-checked once equations are typeset and when the window is resized.
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
  window.addEventListener("load", function () {
    mark();
    // typeset equations and late fonts can widen a table after load
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) MathJax.startup.promise.then(mark);
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(mark);
  });
  window.addEventListener("resize", mark);
})();

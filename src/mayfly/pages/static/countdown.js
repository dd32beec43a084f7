// Live countdown for elements with data-countdown (an ISO date-time). Pages work without it.
(function () {
  var nodes = document.querySelectorAll("[data-countdown]");
  if (!nodes.length) return;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var now = Date.now();
    nodes.forEach(function (node) {
      var left = Math.max(0, Math.floor((Date.parse(node.getAttribute("data-countdown")) - now) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      node.textContent = left === 0 ? "expired" : (h ? h + ":" + pad(m) : m) + ":" + pad(s);
    });
  }
  tick();
  setInterval(tick, 1000);
})();

(function () {
  var svg = document.getElementById('ov');
  if (svg) {
    var vb = svg.viewBox.baseVal, W = vb.width, x = 0, w = W;
    var axis = document.getElementById('ov-axis');
    var t0 = Number(svg.dataset.t0), span = Number(svg.dataset.span);
    var fmt = function (ns) {
      var d = new Date(Math.floor(ns / 1e6)), us = Math.floor((ns % 1e9) / 1e3);
      var p = function (n, k) { return String(n).padStart(k, '0'); };
      return p(d.getUTCHours(), 2) + ':' + p(d.getUTCMinutes(), 2) + ':' +
        p(d.getUTCSeconds(), 2) + (w < W / 20 ? '.' + p(us, 6) : '');
    };
    var draw = function () {
      vb.x = x; vb.width = w;
      if (!axis) { return; }
      var html = '';
      for (var i = 0; i <= 8; i++) {
        var ux = x + w * i / 8;
        html += '<span style="left:' + (i * 12.5) + '%">' + fmt(t0 + span * ux / W) + '</span>';
      }
      axis.innerHTML = html;
    };
    var zoom = function (f, at) {
      var nw = Math.min(W, Math.max(W / 1e6, w * f));
      x = Math.max(0, Math.min(W - nw, x + (w - nw) * at)); w = nw; draw();
    };
    svg.addEventListener('wheel', function (e) {
      if (!(e.ctrlKey || e.metaKey || e.altKey)) { return; }
      e.preventDefault();
      var r = svg.getBoundingClientRect();
      zoom(e.deltaY > 0 ? 1.25 : 0.8, (e.clientX - r.left) / r.width);
    }, {passive: false});
    var drag = null;
    svg.addEventListener('pointerdown', function (e) {
      drag = {cx: e.clientX, x: x}; svg.setPointerCapture(e.pointerId);
    });
    svg.addEventListener('pointermove', function (e) {
      if (!drag) { return; }
      var r = svg.getBoundingClientRect();
      x = Math.max(0, Math.min(W - w, drag.x - (e.clientX - drag.cx) * w / r.width)); draw();
    });
    svg.addEventListener('pointerup', function () { drag = null; });
    document.querySelectorAll('[data-zoom]').forEach(function (b) {
      b.addEventListener('click', function () {
        var z = b.dataset.zoom;
        if (z === 'reset') { x = 0; w = W; draw(); } else { zoom(Number(z), 0.5); }
      });
    });
    document.getElementById('ov-controls').hidden = false;
  }
  document.body.dataset.ready = '1';
})();

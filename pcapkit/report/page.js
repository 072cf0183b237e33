(function () {
  var svg = document.getElementById('ov');
  if (svg) {
    var vb = svg.viewBox.baseVal, W = vb.width, x = 0, w = W;
    var axis = document.getElementById('ov-axis');
    // t0 is nanoseconds since the epoch, beyond a double's exact integers: kept as seconds
    // and nanoseconds apart
    var t0s = Number(svg.dataset.t0.slice(0, -9)), t0n = Number(svg.dataset.t0.slice(-9));
    var span = Number(svg.dataset.span);
    var p = function (n, k) { return String(n).padStart(k, '0'); };
    var fmt = function (off) {
      var total = t0n + Math.round(off), s = t0s + Math.floor(total / 1e9);
      var d = new Date(s * 1000), us = Math.floor((total % 1e9) / 1e3);
      // as many decimals as the ticks' spacing needs: none, milliseconds or microseconds
      var step = span * w / W / 8, frac = step >= 1e9 ? '' : step >= 1e6 ?
        '.' + p(Math.floor(us / 1000), 3) : '.' + p(us, 6);
      return p(d.getUTCHours(), 2) + ':' + p(d.getUTCMinutes(), 2) + ':' +
        p(d.getUTCSeconds(), 2) + frac;
    };
    var zoomed = false;
    var secs = function (ux) { return (span * ux / W / 1e9).toFixed(6); };
    var draw = function () {
      vb.x = x; vb.width = w;
      // the view, as seconds since the capture began: in the address, to share or reload
      var view = secs(x) + ',' + secs(x + w);
      svg.dataset.view = view;
      if (w < W) {
        history.replaceState(null, '', '#view=' + view);
        zoomed = true;
      } else if (zoomed) {
        history.replaceState(null, '', location.pathname);
        zoomed = false;
      }
      if (!axis) { return; }
      var html = '';
      for (var i = 0; i <= 8; i++) {
        html += '<span style="left:' + (i * 12.5) + '%">' + fmt(span * (x + w * i / 8) / W) +
          '</span>';
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
    var asked = /^#view=([\d.]+),([\d.]+)$/.exec(location.hash);
    if (asked) {
      var a = Number(asked[1]) * 1e9 / span * W, b = Number(asked[2]) * 1e9 / span * W;
      w = Math.min(W, Math.max(W / 1e6, b - a));
      x = Math.max(0, Math.min(W - w, a));
    }
    draw();
  }
  document.body.dataset.ready = '1';
})();

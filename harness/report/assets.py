"""The report page's inline style sheet and its load check (harness.report; no network, nothing linked)."""

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top}th{background:#f2f2f2}td{font-variant-numeric:tabular-nums}
.verdict{font-weight:bold;padding:1px 6px;border-radius:3px}.supported{background:#c8ecc8;color:#165a16}
.supported-unverified{background:#fbe3a8;color:#7a5400}
.contradicted,.contradicted-unverified{background:#f6c6c6;color:#8a1010}.equivalent{background:#cfe3f7;color:#123}
.inconclusive,.underpowered{background:#fbe3a8;color:#7a5400}.confounded{background:#e0c8f0;color:#40106a}
.unknown{background:#ddd}.note{font-size:.85em;color:#555;font-style:italic}
.partial{background:#b00020;color:#fff;font-weight:bold;font-size:1.3em;padding:.6em 1em;margin:.8em 0}
.warn li,p.warn{color:#8a4b00}.case{border-top:2px solid #888;margin-top:2em}.statement{font-style:italic}
img{max-width:100%;display:block;margin:.5em 0}pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em}
.kv td:first-child{font-family:monospace}
"""

CHECK_JS = """
window.advhypErrors = [];
window.addEventListener('error', function (e) { window.advhypErrors.push(String(e.message)); });
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var b = document.body;
  b.setAttribute('data-images-total', imgs.length);
  b.setAttribute('data-images-ok', ok);
  b.setAttribute('data-js-errors', window.advhypErrors.join(' | '));
  b.setAttribute('data-checked', 'yes');
});
"""

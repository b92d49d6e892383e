"""The report page's inline style sheet and script (harness.report; no network, nothing linked)."""

CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:.8em auto;max-width:1340px;padding:0 .8em;color:#222}
h1{font-size:1.35em;margin:.2em 0}h2{font-size:1.15em;margin:1em 0 .3em}h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;margin:.4em 0;max-width:100%}th,td{border:1px solid #ccc;padding:2px 6px;
text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#f2f2f2;overflow-wrap:normal}
td{font-variant-numeric:tabular-nums}.kv td:first-child{font-family:monospace}
.kv td:first-child,.eps td{overflow-wrap:break-word}.attacks{display:inline-table;margin-right:1em}
.verdict{font-weight:bold;padding:1px 6px;border-radius:3px;white-space:nowrap}
.supported{background:#c8ecc8;color:#165a16}.contradicted,.contradicted-unverified{background:#f6c6c6;color:#8a1010}
.equivalent,.negligible{background:#cfe3f7;color:#123}.inconclusive,.underpowered{background:#fbe3a8;color:#7a5400}
.supported-unverified,.equivalent-unverified,.negligible-unverified{background:#e0c8f0;color:#40106a}
.unknown{background:#ddd}.note,.sub{font-size:.85em;color:#555}.note{font-style:italic}.meta{margin:.2em 0;color:#444}
.board{width:100%}.board td{padding:3px 6px;overflow-wrap:break-word}.board img{margin:0}
.board b,.board a,.nowrap,.check{white-space:nowrap}.board td:nth-last-child(2){white-space:nowrap}
.chip{display:inline-block;min-width:1.4em;text-align:center;margin:1px;padding:0 3px;border-radius:3px;
font-size:.85em}.chip.deciding{outline:2px solid #333}
.check.ok{color:#165a16}.check.warn{color:#8a4b00}.check.bad{color:#b00020;font-weight:bold}.check.note{color:#555}
.partial{background:#b00020;color:#fff;font-weight:bold;font-size:1.3em;padding:.6em 1em;margin:.8em 0}
.warn li,p.warn{color:#8a4b00}details{margin:.3em 0}details.claim{border-top:1px solid #999;padding:.2em 0}
summary{cursor:pointer}details[open]>summary{margin-bottom:.4em}img{max-width:100%;display:block;margin:.4em 0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f7f7;padding:.5em}
"""

# Records on load what the browser test reads (harness.report.page), and opens the fold a link points to.
CHECK_JS = """
window.advhypErrors = [];
window.addEventListener('error', function (e) { window.advhypErrors.push(String(e.message)); });
function advhypOpen() {
  var target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.tagName === 'DETAILS') { target.open = true; }
}
window.addEventListener('hashchange', advhypOpen);
window.addEventListener('load', function () {
  advhypOpen();
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var page = document.documentElement, b = document.body, board = document.getElementById('board');
  var wide = Array.prototype.slice.call(b.querySelectorAll('*')).filter(function (e) {
    return e.getBoundingClientRect().right > page.clientWidth + 0.5;
  }).slice(0, 5).map(function (e) { return e.tagName + '.' + e.className; });
  b.setAttribute('data-images-total', imgs.length);
  b.setAttribute('data-images-ok', ok);
  b.setAttribute('data-js-errors', window.advhypErrors.join(' | '));
  b.setAttribute('data-scroll-width', page.scrollWidth);
  b.setAttribute('data-client-width', page.clientWidth);
  b.setAttribute('data-window', window.innerWidth + 'x' + window.innerHeight);
  b.setAttribute('data-board-bottom', board ? Math.ceil(board.getBoundingClientRect().bottom + window.scrollY) : -1);
  b.setAttribute('data-overflowing', wide.join(' '));
  b.setAttribute('data-checked', 'yes');
});
"""

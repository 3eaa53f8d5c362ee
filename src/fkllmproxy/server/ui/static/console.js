// fkllm console: live numbers and charts, the copy button, confirmations.
// Progressive: every page works without this file; no inline script (CSP), no library.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var HOUR = 3600;
  var body = document.body;
  var page = body.dataset.page;
  var csrf = body.dataset.csrf;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el && el.textContent !== value) el.textContent = value;
  }
  function ms(v) { return v === null || v === undefined ? "-" : v.toFixed(1) + " ms"; }
  function pct(v) { return v === null || v === undefined ? "-" : (v * 100).toFixed(1) + " %"; }
  function num(v) { return v === null || v === undefined ? "-" : v.toLocaleString("en", {maximumFractionDigits: 2, minimumFractionDigits: 2}); }
  function money(v) { return v === null || v === undefined ? "-" : "$" + v.toFixed(4); }

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {"accept": "application/json", "x-csrf-token": csrf}})
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/ui/login"); throw new Error("signed out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      });
  }

  // Poll every few seconds while the tab is visible.
  function poll(fn, seconds) {
    var timer = null;
    function tick() {
      timer = null;
      fn().catch(function () {}).then(function () {
        if (!document.hidden) timer = setTimeout(tick, seconds * 1000);
      });
    }
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && timer === null) tick();
    });
    tick();
  }

  // A line chart of the last hour in an <svg viewBox="0 0 320 120">.
  function draw(svg, points, lines, format) {
    if (!svg) return;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var top = 16, bottom = 106, left = 2, right = 318;
    var now = points.length ? points[points.length - 1].t : Date.now() / 1000;
    var max = 0;
    points.forEach(function (p) { lines.forEach(function (l) { var v = p[l.key]; if (v > max) max = v; }); });
    if (max <= 0) max = 1;
    // The hour once it is full; until then the time since the first sample (a minute at least).
    var span = points.length ? Math.max(60, Math.min(HOUR, now - points[0].t)) : HOUR;
    function x(t) { return left + (right - left) * (1 - (now - t) / span); }
    function y(v) { return bottom - (bottom - top) * (v / max); }
    [0, 0.5, 1].forEach(function (f) {
      var g = document.createElementNS(SVG, "line");
      g.setAttribute("x1", left); g.setAttribute("x2", right);
      g.setAttribute("y1", y(max * f)); g.setAttribute("y2", y(max * f));
      g.setAttribute("class", "grid");
      svg.appendChild(g);
    });
    var label = document.createElementNS(SVG, "text");
    label.setAttribute("x", left + 2); label.setAttribute("y", 12);
    label.setAttribute("class", "axis");
    label.textContent = "max " + format(max);
    svg.appendChild(label);
    var since = document.createElementNS(SVG, "text");
    since.setAttribute("x", left + 2); since.setAttribute("y", 119);
    since.setAttribute("class", "axis");
    since.textContent = "last " + Math.round(span / 60) + " min";
    svg.appendChild(since);
    var legend = [];
    lines.forEach(function (l, i) {
      var d = points.filter(function (p) { return p[l.key] !== null && p[l.key] !== undefined; })
        .map(function (p) { return x(p.t).toFixed(1) + "," + y(p[l.key]).toFixed(1); });
      if (d.length === 1) {
        var dot = document.createElementNS(SVG, "circle");
        var xy = d[0].split(",");
        dot.setAttribute("cx", xy[0]); dot.setAttribute("cy", xy[1]); dot.setAttribute("r", 2.5);
        dot.setAttribute("class", "dot s" + i);
        svg.appendChild(dot);
      } else if (d.length) {
        var line = document.createElementNS(SVG, "polyline");
        line.setAttribute("points", d.join(" "));
        line.setAttribute("class", "line s" + i);
        svg.appendChild(line);
      }
      var last = points.length ? points[points.length - 1][l.key] : null;
      legend.push(l.label + " " + (last === null || last === undefined ? "-" : format(last)));
      if (lines.length > 1) {
        var t = document.createElementNS(SVG, "text");
        t.setAttribute("x", right - 2 - (lines.length - 1 - i) * 40); t.setAttribute("y", 12);
        t.setAttribute("text-anchor", "end"); t.setAttribute("class", "axis s" + i);
        t.textContent = l.label;
        svg.appendChild(t);
      }
    });
    var title = document.createElementNS(SVG, "title");
    title.textContent = "Last hour, now: " + legend.join(", ");
    svg.insertBefore(title, svg.firstChild);
  }

  function overview() {
    var points = [];
    var last = 0;
    return function () {
      return getJSON("/ui/api/overview?since=" + last).then(function (d) {
        points = points.concat(d.points).filter(function (p) { return p.t > d.now - HOUR; });
        if (points.length) last = points[points.length - 1].t;
        text("status", d.status);
        text("rps", num(d.rps));
        text("success_rate", pct(d.success_rate));
        text("p50", ms(d.latency_ms.p50));
        text("p95", ms(d.latency_ms.p95));
        text("p99", ms(d.latency_ms.p99));
        text("total_requests", d.total_requests.toLocaleString("en"));
        text("tokens", d.tokens.toLocaleString("en"));
        text("cost_today", d.ledger ? money(d.cost_today) : "ledger off");
        text("updated", "Updated " + new Date(d.now * 1000).toISOString().slice(11, 19) + " UTC");
        var fixed = function (v) { return v.toFixed(2); };
        draw(document.getElementById("chart-rps"), points, [{key: "rps", label: "req/s"}], fixed);
        draw(document.getElementById("chart-error_rate"), points, [{key: "error_rate", label: "errors"}], pct);
        draw(document.getElementById("chart-latency"), points, [
          {key: "p50", label: "p50"}, {key: "p95", label: "p95"}, {key: "p99", label: "p99"}], ms);
        draw(document.getElementById("chart-tokens"), points, [{key: "tokens_per_s", label: "tokens/s"}], fixed);
      });
    };
  }

  function providers() {
    return getJSON("/ui/api/providers").then(function (d) {
      d.providers.forEach(function (p) {
        var row = document.querySelector('tr[data-provider="' + CSS.escape(p.name) + '"]');
        if (!row) return;
        var circuit = row.querySelector('[data-field="circuit"] span');
        if (circuit && circuit.textContent !== p.circuit.replace("_", "-")) {
          circuit.textContent = p.circuit.replace("_", "-");
          circuit.className = "circuit " + p.circuit;
        }
        var set = function (field, value) {
          var cell = row.querySelector('[data-field="' + field + '"]');
          if (cell && cell.textContent !== value) cell.textContent = value;
        };
        set("failures", String(p.consecutive_failures));
        set("error_rate", pct(p.recent_error_rate));
        set("p50", ms(p.latency_ms.p50));
        set("p95", ms(p.latency_ms.p95));
      });
    });
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      var value = source ? source.textContent : "";
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(value).then(done, function () { select(source); });
      } else {
        select(source);
        try { if (document.execCommand("copy")) done(); } catch (e) { /* selected: Ctrl+C */ }
      }
    });
  });
  function select(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  document.querySelectorAll("form.revoke").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var name = form.querySelector('input[name="name"]').value;
      if (!window.confirm("Revoke the key " + name + "? Clients using it get 401 from now on.")) {
        event.preventDefault();
      }
    });
  });

  if (page === "overview") poll(overview(), 5);
  if (page === "providers") poll(providers, 5);
})();

// fedswarm dashboard: renders the run's snapshot (GET api/state, then server-sent events on
// "events"). Charts are drawn as SVG here: no charting library, nothing loaded from elsewhere.
// Every value from the run (participant names, failure reasons) goes in as text, never HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#3b6fd6", "#e67e22", "#1f9d55", "#8e44ad", "#c0392b"];
const W = 480, H = 220, PAD = { l: 48, r: 12, t: 22, b: 26 };

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
                                      : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function ticks(lo, hi, n) {
  const out = [];
  for (let i = 0; i <= n; i++) out.push(lo + (hi - lo) * i / n);
  return out;
}

function fmt(v) {
  if (v === null || v === undefined) return "-";
  const a = Math.abs(v);
  return a !== 0 && (a < 0.01 || a >= 1e4) ? v.toExponential(2) : v.toFixed(a < 10 ? 3 : 1);
}

// series: [{name, points: [[x, y], ...]}]; draws axes, grid, one polyline each, a legend.
function drawChart(svg, series) {
  svg.replaceChildren();
  const pts = series.flatMap(s => s.points);
  if (pts.length === 0) {
    svg.append(el("svg:text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
    return;
  }
  const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 + 0.1; y1 += Math.abs(y1) * 0.1 + 0.1; }
  const sx = x => PAD.l + (x - x0) / (x1 - x0) * (W - PAD.l - PAD.r);
  const sy = y => H - PAD.b - (y - y0) / (y1 - y0) * (H - PAD.t - PAD.b);
  for (const y of ticks(y0, y1, 4)) {
    svg.append(el("svg:line", { class: "grid", x1: PAD.l, x2: W - PAD.r, y1: sy(y), y2: sy(y) }));
    svg.append(el("svg:text", { x: PAD.l - 4, y: sy(y) + 4, "text-anchor": "end" }, fmt(y)));
  }
  for (const x of ticks(x0, x1, Math.min(5, x1 - x0))) {
    svg.append(el("svg:text", { x: sx(x), y: H - 8, "text-anchor": "middle" }, String(Math.round(x))));
  }
  svg.append(el("svg:line", { class: "axis", x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b }));
  svg.append(el("svg:line", { class: "axis", x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b }));
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const color = COLORS[i % COLORS.length];
    const points = s.points.map(p => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    svg.append(el("svg:polyline", { points, stroke: color, "data-series": s.name }));
    if (s.points.length === 1) {
      svg.append(el("svg:circle", { cx: sx(s.points[0][0]), cy: sy(s.points[0][1]), r: 3, fill: color }));
    }
    const lx = PAD.l + 8 + i * 120;
    svg.append(el("svg:rect", { x: lx, y: 6, width: 10, height: 10, fill: color }));
    svg.append(el("svg:text", { x: lx + 14, y: 15 }, s.name));
  });
}

function series(rounds, key, name) {
  return { name, points: rounds.filter(r => r[key] !== undefined && r[key] !== null)
                               .map(r => [r.round, r[key]]) };
}

function fillTable(id, rows, cells, bad) {
  const body = document.querySelector(`#${id} tbody`);
  if (rows.length === 0) {
    const columns = document.querySelectorAll(`#${id} thead th`).length;
    const placeholder = el("tr", { class: "placeholder" });
    placeholder.append(el("td", { colspan: columns, class: "empty" }, "none yet"));
    body.replaceChildren(placeholder);
    return;
  }
  body.replaceChildren(...rows.map(row => {
    const tr = el("tr", bad && bad(row) ? { class: "bad" } : {});
    for (const [value, num] of cells(row)) tr.append(el("td", num ? { class: "num" } : {}, value));
    return tr;
  }));
}

function text(id, value) { document.getElementById(id).textContent = value; }

function renderHeader(run) {
  text("title", run.title);
  text("round-counter", String(run.rounds_done));
  text("round-total", run.rounds_total ? ` / ${run.rounds_total}` : "");
  const status = run.finished ? "finished" : run.live ? "live" : "stored";
  const badge = document.getElementById("status");
  badge.textContent = status;
  badge.className = `badge ${status}`;
}

function renderCards(state) {
  const last = state.rounds[state.rounds.length - 1] || {};
  const evaluated = state.rounds.filter(r => r.eval_accuracy !== undefined);
  const acc = evaluated.length ? evaluated[evaluated.length - 1].eval_accuracy : null;
  text("card-loss", fmt(last.train_loss));
  text("card-accuracy", acc === null ? "-" : `${(acc * 100).toFixed(1)}%`);
  text("card-participants", String(state.participants.length));
  const failures = state.events.filter(e => e.kind === "failure").length;
  text("card-failures", `${failures} / ${state.events.length - failures}`);
  const eps = state.rounds.filter(r => r.epsilon !== null);
  document.getElementById("card-epsilon-box").hidden = eps.length === 0;
  if (eps.length) text("card-epsilon", fmt(eps[eps.length - 1].epsilon));
}

function renderCharts(rounds) {
  drawChart(document.getElementById("chart-loss"), [
    series(rounds, "train_loss", "train"), series(rounds, "eval_loss", "test"),
    series(rounds, "fed_eval_loss", "clients' test")]);
  drawChart(document.getElementById("chart-accuracy"), [
    series(rounds, "eval_accuracy", "test"), series(rounds, "fed_eval_accuracy", "clients' test")]);
  drawChart(document.getElementById("chart-latency"), [series(rounds, "seconds", "seconds")]);
  const eps = series(rounds, "epsilon", "epsilon");
  document.getElementById("epsilon-figure").hidden = eps.points.length === 0;
  if (eps.points.length) drawChart(document.getElementById("chart-epsilon"), [eps]);
}

function renderTables(state) {
  fillTable("participants", state.participants, p => [
    [p.client_id], [String(p.updates), true], [String(p.failures), true],
    [String(p.refusals), true], [p.last_problem || ""]], p => p.refusals > 0);
  fillTable("rounds", state.rounds.slice().reverse(), r => [
    [String(r.round), true], [String(r.num_clients), true], [String(r.num_failures), true],
    [fmt(r.train_loss), true], [r.eval_accuracy === undefined ? "" : fmt(r.eval_accuracy), true],
    [r.seconds.toFixed(2), true]]);
  const flags = state.rounds.flatMap(r => Object.entries(r.flags).map(([k, v]) => [r.round, k, v]));
  document.getElementById("flags-panel").hidden = flags.length === 0;
  fillTable("flags", flags.reverse(), f => [[String(f[0]), true], [f[1]], [fmt(f[2]), true]]);
  fillTable("events", state.events.slice().reverse(), e => [
    [String(e.round), true], [e.client_id], [e.kind], [e.reason]], e => e.kind === "refusal");
  fillTable("versions", state.versions.slice().reverse(), v => [
    [String(v.round), true], [v.sha256.slice(0, 12)], [v.parent ? v.parent.slice(0, 12) : ""],
    [v.kept ? "yes" : "pruned"]]);
}

function render(state) {
  renderHeader(state.run);
  renderCards(state);
  renderCharts(state.rounds);
  renderTables(state);
}

function connect() {
  const events = new EventSource("events");
  events.addEventListener("snapshot", e => render(JSON.parse(e.data)));
  events.onerror = () => {
    const badge = document.getElementById("status");
    if (!badge.classList.contains("finished")) { badge.textContent = "offline"; badge.className = "badge offline"; }
  };
}

fetch("api/state").then(r => r.json()).then(render).finally(connect);

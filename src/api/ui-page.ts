/**
 * The dashboard page, whole: HTML, CSS and a small script that polls
 * /ui/overview each second and draws the mesh as SVG. Kept as one string so
 * the bundle and the single executable carry it with no file beside them.
 * Everything the node sends is put in the page as text (textContent), never
 * as markup.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gandalf-node</title>
<style>
  :root { --bg: #101418; --fg: #e6e6e6; --dim: #8a949e; --card: #1a2027; --alive: #3fb950; --suspect: #d29922; --dead: #f85149; --left: #6e7681; --accent: #58a6ff; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
  header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; padding: .75rem 1rem; background: var(--card); }
  header h1 { font-size: 1.1rem; margin: 0; }
  header span { color: var(--dim); }
  main { display: grid; gap: 1rem; padding: 1rem; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
  section { background: var(--card); border-radius: 8px; padding: .75rem 1rem; min-width: 0; }
  h2 { font-size: .95rem; margin: 0 0 .5rem; color: var(--dim); font-weight: 600; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  td, th { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid #2a313a; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 12rem; }
  th { color: var(--dim); font-weight: 500; }
  .rates { display: flex; gap: 2rem; }
  .rate b { display: block; font-size: 1.8rem; font-variant-numeric: tabular-nums; }
  .state-alive { color: var(--alive); } .state-suspect { color: var(--suspect); } .state-dead { color: var(--dead); } .state-left { color: var(--left); }
  svg { width: 100%; height: auto; max-height: 360px; }
  svg text { fill: var(--fg); font-size: 11px; }
  svg .rtt { fill: var(--dim); font-size: 10px; }
  #errors li { color: var(--dim); margin-bottom: .25rem; word-break: break-word; }
  #errors li b { color: var(--suspect); font-weight: 500; }
  #errors li.error b { color: var(--dead); }
  #status.stale { color: var(--dead); }
</style>
</head>
<body>
<header>
  <h1>gandalf-node</h1>
  <span id="self">connecting…</span>
  <span id="status">live</span>
</header>
<main>
  <section>
    <h2>Mesh</h2>
    <svg id="mesh" viewBox="0 0 400 320" role="img" aria-label="boards of the cluster and this board's links"></svg>
    <div id="boards"></div>
  </section>
  <section>
    <h2>Traffic on this board</h2>
    <div class="rates">
      <div class="rate">writes/s<b id="write-rate">0.0</b></div>
      <div class="rate">reads/s<b id="read-rate">0.0</b></div>
    </div>
  </section>
  <section>
    <h2>Groups (leader, databases)</h2>
    <table><thead><tr><th>group</th><th>leader</th><th>voters</th><th>size</th><th>applied</th></tr></thead><tbody id="groups"></tbody></table>
  </section>
  <section>
    <h2>Locks</h2>
    <table><thead><tr><th>lock</th><th>holder</th><th>token</th><th>waiters</th></tr></thead><tbody id="locks"></tbody></table>
  </section>
  <section>
    <h2>Recent errors and warnings</h2>
    <ul id="errors"></ul>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
let previous;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function size(n) {
  if (n === undefined || n === null) return "";
  return n < 1024 * 1024 ? (n / 1024).toFixed(0) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
}
function rows(tbody, list, cells) {
  tbody.replaceChildren(...list.map((item) => {
    const tr = el("tr");
    for (const c of cells(item)) tr.append(el("td", c));
    return tr;
  }));
}

function drawMesh(o) {
  const g = $("mesh");
  const nodes = o.nodes.slice().sort((a, b) => a["node-id"].localeCompare(b["node-id"]));
  const cx = 200, cy = 160, r = nodes.length > 1 ? 115 : 0;
  const pos = new Map(nodes.map((n, i) => {
    const a = (2 * Math.PI * i) / nodes.length - Math.PI / 2;
    return [n["node-id"], { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) }];
  }));
  const parts = [];
  const self = pos.get(o.node);
  for (const peer of o.links) {
    const p = pos.get(peer);
    if (!self || !p) continue;
    parts.push(svg("line", { x1: self.x, y1: self.y, x2: p.x, y2: p.y, stroke: "#58a6ff", "stroke-width": 1.5, "stroke-opacity": 0.6 }));
    const n = nodes.find((x) => x["node-id"] === peer);
    if (n && n["rtt-ms"] !== null) parts.push(svg("text", { x: (self.x + p.x) / 2, y: (self.y + p.y) / 2 - 3, "text-anchor": "middle", class: "rtt" }, n["rtt-ms"].toFixed(1) + " ms"));
  }
  const colors = { alive: "#3fb950", suspect: "#d29922", dead: "#f85149", left: "#6e7681" };
  for (const n of nodes) {
    const p = pos.get(n["node-id"]);
    const leads = o.groups.filter((x) => x.leader === n["node-id"]).length;
    parts.push(svg("circle", { cx: p.x, cy: p.y, r: n["node-id"] === o.node ? 20 : 16, fill: colors[n.state] || "#6e7681", "fill-opacity": 0.85, stroke: n["node-id"] === o.node ? "#e6e6e6" : "none", "stroke-width": 2 }));
    parts.push(svg("text", { x: p.x, y: p.y + 34, "text-anchor": "middle" }, n["node-id"]));
    parts.push(svg("text", { x: p.x, y: p.y + 47, "text-anchor": "middle", class: "rtt" }, n.arch + " " + n.transport + (leads ? " · leads " + leads : "")));
  }
  g.replaceChildren(...parts);
  const list = el("table");
  list.append(...nodes.map((n) => {
    const tr = el("tr", undefined, "board");
    tr.dataset.node = n["node-id"];
    tr.dataset.state = n.state;
    tr.append(el("td", n["node-id"]), el("td", n.state, "state-" + n.state), el("td", n.arch), el("td", n.transport), el("td", n["rtt-ms"] === null ? "" : n["rtt-ms"] + " ms"));
    return tr;
  }));
  $("boards").replaceChildren(list);
}

function render(o) {
  $("self").textContent = o.node + " · " + o.cluster + " · v" + o.version;
  drawMesh(o);
  if (previous) {
    const dt = Math.max(0.001, (o.time - previous.time) / 1000);
    $("write-rate").textContent = ((o.counters.writes - previous.counters.writes) / dt).toFixed(1);
    $("read-rate").textContent = ((o.counters.reads - previous.counters.reads) / dt).toFixed(1);
  }
  previous = o;
  rows($("groups"), o.groups, (x) => [x.group, x.leader || "none", x.voters.join(" "), size(x.size_bytes), x.applied_index]);
  rows($("locks"), o.locks, (l) => [l.name, l.holder ? l.holder.node : "free", l.holder ? l.holder.token : "", l.waiters]);
  $("errors").replaceChildren(...o.errors.slice().reverse().map((e) => {
    const li = el("li", undefined, e.level);
    li.append(el("b", e.time.slice(11, 19) + " " + e.level), document.createTextNode(" " + e.msg));
    return li;
  }));
}

async function poll() {
  try {
    const r = await fetch("/ui/overview", { cache: "no-store" });
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    render(await r.json());
    $("status").textContent = "live";
    $("status").className = "";
  } catch (err) {
    $("status").textContent = "not answering: " + err.message;
    $("status").className = "stale";
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body>
</html>
`;

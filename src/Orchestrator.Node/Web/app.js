// The job page: reads the job API (the same JSON the console client reads) with the session cookie, and draws with
// uPlot. Everything from the API is put into the page as text (textContent), never as markup.
"use strict";

const view = document.getElementById("view");
const api = "/api/v1";
let generation = 0;   // bumped on every navigation: a poll of the page left behind stops

async function get(path) {
  const response = await fetch(api + path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) { location.reload(); throw new Error("signed out"); }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).error || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

const number = (value, digits) => (typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "–");
const percent = value => (typeof value === "number" && isFinite(value) ? (100 * value).toFixed(0) + " %" : "–");
const host = node => (node || "").replace(/^.*@/, "");
const time = ms => { const d = new Date(ms); return isNaN(d) ? String(ms) : d.toISOString().replace("T", " ").replace("Z", ""); };

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map(h => el("th", {}, h)))),
    el("tbody", {}, ...rows.map(cells => el("tr", {}, ...cells.map(c => c instanceof Node ? el("td", {}, c) : el("td", {}, String(c)))))));
}

// ---- the job list ----

async function jobList(mine) {
  view.replaceChildren(el("h2", {}, "Jobs"), el("div", { id: "jobs" }, el("p", { class: "muted" }, "Loading…")));
  while (mine === generation) {
    try {
      const jobs = await get("/jobs");
      const rows = jobs.slice().reverse().map(j => [el("a", { href: "#/jobs/" + encodeURIComponent(j.id) }, j.id), j.name, el("span", { class: "state " + j.state }, j.state)]);
      document.getElementById("jobs")?.replaceChildren(jobs.length ? table(["id", "name", "state"], rows) : el("p", { class: "muted" }, "No jobs yet."));
    } catch (e) {
      document.getElementById("jobs")?.replaceChildren(el("p", { class: "error" }, String(e.message)));
    }
    await sleep(3000);
  }
}

// ---- one job ----

class Chart {
  constructor(container, title, yLabel) {
    this.container = container;
    this.box = el("div", { class: "chart" }, el("h3", {}, title), el("div", { class: "empty" }, "no data yet"));
    container.append(this.box);
    this.yLabel = yLabel;
    this.plot = null;
    this.names = "";
  }

  // data: [xs, ...ys]; names: one per y series. Points only (no lines) for sparse series such as evaluations.
  draw(names, data, pointsOnly) {
    const xs = data[0];
    this.box.dataset.points = String(xs.length);
    this.box.__steps = xs;   // what the chart shows, for a test that reads it
    if (xs.length === 0) return;
    const key = names.join("|");
    if (!this.plot || this.names !== key) {
      this.plot?.destroy();
      this.box.replaceChildren(this.box.firstChild);
      const colors = ["#2563eb", "#dc6803", "#067647", "#b42318", "#7a5af8", "#0e9384", "#c11574", "#475467"];
      this.plot = new uPlot({
        width: Math.max(this.box.clientWidth - 16, 300), height: 220,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, { label: this.yLabel, size: 60 }],
        series: [{ label: "step" }, ...names.map((name, i) => ({
          label: name, stroke: colors[i % colors.length], width: 1.5,
          points: { show: pointsOnly || xs.length < 3, size: 6, fill: colors[i % colors.length] },
          paths: pointsOnly ? () => null : undefined,
        }))],
      }, data, this.box);
      this.names = key;
    } else {
      this.plot.setData(data);
    }
  }
}

async function jobPage(id, mine) {
  const summary = el("div", { class: "summary" });
  const charts = el("div", { class: "charts" });
  const workers = el("div");
  const checkpoints = el("div");
  const logs = el("pre", { class: "logs", id: "logs" });
  const error = el("p", { class: "error" });
  view.replaceChildren(el("h2", {}, "Job ", el("span", { id: "job-id" }, id)), error, summary,
    el("h2", {}, "Training"), charts, el("h2", {}, "Workers"), workers, el("h2", {}, "Checkpoints"), checkpoints, el("h2", {}, "Log"), logs);
  const loss = new Chart(charts, "training loss (rank 0, mean since the previous report)", "loss");
  loss.box.id = "loss-chart";
  const heldOut = new Chart(charts, "held-out metrics at each checkpoint", "value");
  heldOut.box.id = "heldout-chart";
  const throughput = new Chart(charts, "samples/s per worker", "samples/s");
  throughput.box.id = "throughput-chart";
  const communication = new Chart(charts, "communication share per worker", "share");

  let points = [];
  let failures = -1;   // a recovery steps the job back: the history from the checkpoint on is replaced, so read it anew
  let evaluations = [];
  let lastSeq = 0;
  let tick = 0;
  while (mine === generation) {
    try {
      const status = await get("/jobs/" + encodeURIComponent(id));
      renderSummary(summary, status);
      error.textContent = status.error ? "Error: " + status.error : (status.message || "");
      renderWorkers(workers, status);

      // New points after the last step seen; after a recovery (the history rewound to its checkpoint) all of them again.
      if (status.failures !== failures) { points = []; failures = status.failures; }
      let since = points.length ? points[points.length - 1].step : -1;
      for (let page = 0; page < 50 && mine === generation; page++) {
        const m = await get(`/jobs/${encodeURIComponent(id)}/metrics` + (since >= 0 ? `?since=${since}` : ""));
        evaluations = m.evaluations;
        points = points.concat(m.points);
        if (!m.more || !m.points.length) break;
        since = m.points[m.points.length - 1].step;
      }
      drawCharts(points, evaluations, loss, heldOut, throughput, communication);

      if (tick % 3 === 0) renderCheckpoints(checkpoints, await get(`/jobs/${encodeURIComponent(id)}/checkpoints`));
      for (let page = 0; page < 20 && mine === generation; page++) {
        const l = await get(`/jobs/${encodeURIComponent(id)}/logs?since=${lastSeq}`);
        appendLogs(logs, l.lines);
        if (l.lines.length) lastSeq = l.lines[l.lines.length - 1].seq;
        if (!l.more) break;
      }
      if (["Completed", "Failed", "Cancelled"].includes(status.state) && tick > 0) { await sleep(10000); }
    } catch (e) {
      error.textContent = String(e.message);
    }
    tick++;
    await sleep(2000);
  }
}

function renderSummary(summary, s) {
  const item = (label, value, attributes) => el("div", attributes || {}, el("span", {}, label), value);
  summary.replaceChildren(
    item("state", el("span", { class: "state " + s.state, id: "job-state" }, s.state)),
    item("name", s.name),
    item("workload", s.workload || "–"),
    item("step", `${s.step} / ${s.totalSteps}`),
    item("epoch", `${s.epoch} / ${s.epochs}`),
    item("loss", number(s.loss, 4)),
    item("samples/s", number(s.samplesPerSecond, 0)),
    item("recoveries", String(s.failures)),
    item("best checkpoint", s.bestCheckpoint ? `step ${s.bestCheckpoint.step}` : "–"));
}

function renderWorkers(container, s) {
  const stats = s.workerStats || [];
  if (!stats.length) { container.replaceChildren(el("p", { class: "muted" }, s.workers?.length ? s.workers.map(host).join(", ") : "none now")); return; }
  container.replaceChildren(table(["rank", "node", "step", "samples/s", "communication"],
    stats.map(w => [String(w.rank), host(w.node), String(w.step), number(w.samplesPerSecond, 0), percent(w.communicationShare)])));
}

function renderCheckpoints(container, list) {
  if (!list.length) { container.replaceChildren(el("p", { class: "muted" }, "none yet")); return; }
  const names = [...new Set(list.flatMap(c => Object.keys(c.metrics || {})))].sort();
  container.replaceChildren(table(["step", "epoch", ...names, "verified", "path"],
    list.slice().reverse().map(c => [String(c.step), String(c.epoch), ...names.map(n => number((c.metrics || {})[n], 4)),
      c.verified ? "yes" : el("span", { class: "error" }, "no"), c.path])));
}

function appendLogs(pre, lines) {
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  for (const line of lines.slice().sort((a, b) => a.atMs - b.atMs)) {
    const who = line.rank < 0 ? "runner " + host(line.node) : `rank ${line.rank} ${host(line.node)}`;
    pre.append(el("span", { class: line.level }, `${time(line.atMs)} ${who.padEnd(24)} ${line.level.padEnd(7)} ${line.text}\n`));
  }
  while (pre.childNodes.length > 2000) pre.firstChild.remove();
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

function drawCharts(points, evaluations, loss, heldOut, throughput, communication) {
  const steps = points.map(p => p.step);
  loss.draw(["loss"], [steps, points.map(p => p.loss)]);
  const ranks = [...new Set(points.flatMap(p => p.workers.map(w => w.rank)))].sort((a, b) => a - b);
  const byRank = (field) => ranks.map(r => points.map(p => p.workers.find(w => w.rank === r)?.[field] ?? null));
  throughput.draw(ranks.map(r => "rank " + r), [steps, ...byRank("samplesPerSecond")]);
  communication.draw(ranks.map(r => "rank " + r), [steps, ...byRank("communicationShare")]);
  const names = [...new Set(evaluations.flatMap(e => Object.keys(e.metrics)))].sort();
  heldOut.draw(names, [evaluations.map(e => e.step), ...names.map(n => evaluations.map(e => e.metrics[n] ?? null))], true);
}

// ---- routing ----

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

function route() {
  const mine = ++generation;
  const match = /^#\/jobs\/(.+)$/.exec(location.hash);
  if (match) jobPage(decodeURIComponent(match[1]), mine); else jobList(mine);
}

window.addEventListener("hashchange", route);
route();

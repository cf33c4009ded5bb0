// The live dashboard: fetch the study's figures every few seconds and redraw.
// Text from the server (event data, reasons) is only ever set as textContent.

const root = document.getElementById("dashboard");
const dataUrl = root.dataset.url;
const loginUrl = root.dataset.loginUrl;
const refreshMs = Number(root.dataset.refreshS || 5) * 1000;

const COLOURS = { fake: "#c0392b", real: "#2471a3", overall: "#424949" };
const PLOT_CONFIG = { displaylogo: false, responsive: true };
// Legends above the plot, clear of the axis titles.
const LEGEND = { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" };

let timer = null;
let inFlight = false;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function pct(value) {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}%`;
}

function fillTable(table, header, rows, numeric = []) {
  table.replaceChildren();
  const head = el("thead");
  const headRow = el("tr");
  const align = (i) => (numeric.includes(i) ? "num" : "");
  header.forEach((name, i) => headRow.append(el("th", name, align(i))));
  head.append(headRow);
  const body = el("tbody");
  rows.forEach((row) => {
    const tr = el("tr");
    row.forEach((cell, i) => tr.append(el("td", cell, align(i))));
    body.append(tr);
  });
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "none yet");
    td.colSpan = header.length;
    tr.append(td);
    body.append(tr);
  }
  table.append(head, body);
}

function fillList(dl, pairs) {
  dl.replaceChildren();
  pairs.forEach(([term, value]) => dl.append(el("dt", term), el("dd", value)));
}

function drawSummary(data) {
  const status = document.getElementById("study-status");
  status.textContent = data.study.status;
  status.className = `badge status-${data.study.status}`;

  const byStatus = Object.entries(data.sessions.by_status);
  fillTable(
    document.getElementById("sessions-table"),
    ["status", "sessions"],
    [...byStatus, ["total", data.sessions.total]],
    [1],
  );

  const checks = data.checks;
  fillList(document.getElementById("checks"), [
    ["check trials answered", checks.answered],
    ["failed", checks.failed],
    ["sessions with a failure", checks.sessions_with_failures],
    ["screened out", checks.screened_out],
  ]);

  const timing = data.timing;
  fillList(document.getElementById("timing"), [
    ["main trials answered", timing.answered],
    ["timing invalid",
      `${timing.timing_invalid} (${pct(timing.timing_invalid_share)})`],
    ["page hidden", timing.visibility_lost],
    ["focus lost", timing.focus_lost],
  ]);

  const duration = data.duration;
  const median = duration.median_minutes;
  fillList(document.getElementById("duration"), [
    ["completed sessions", duration.completed],
    ["median duration", median === null ? "–" : `${median.toFixed(1)} min`],
  ]);
}

function rateCell(rate) {
  if (!rate) return "n/a";
  if (rate.n === 0) return "–";
  const interval = `[${pct(rate.ci_low)}, ${pct(rate.ci_high)}]`;
  return `${pct(rate.rate)} ${interval} (${rate.errors}/${rate.n})`;
}

function drawErrorTable(data) {
  document.getElementById("error-note").textContent = data.error_rates.note;
  const rows = data.error_rates.rows.map((row) => [
    row.model,
    rateCell(row.fake),
    rateCell(row.real),
    rateCell(row.overall),
  ]);
  fillTable(
    document.getElementById("error-table"),
    ["model", "fake error rate (generated judged real)", "real error rate", "overall"],
    rows,
  );
}

function drawTables(data) {
  fillTable(
    document.getElementById("exclusions"),
    ["status", "reason", "sessions"],
    data.exclusions.map((row) => [row.status, row.reason || "–", row.n]),
    [2],
  );
  fillTable(
    document.getElementById("events"),
    ["time (UTC)", "event", "by", "session", "details"],
    data.events.map((e) => [
      e.at.replace("T", " ").replace("+00:00", ""),
      e.kind,
      e.actor,
      e.session || "",
      Object.keys(e.data).length ? JSON.stringify(e.data) : "",
    ]),
  );
}

function errorBars(rows, key) {
  const shown = rows.filter((row) => row[key] && row[key].n > 0);
  return {
    type: "scatter",
    mode: "markers",
    name: key === "fake" ? "fake (generated judged real)" : key,
    x: shown.map((row) => row.model),
    y: shown.map((row) => row[key].rate),
    marker: { color: COLOURS[key], size: 9 },
    error_y: {
      type: "data",
      symmetric: false,
      array: shown.map((row) => row[key].ci_high - row[key].rate),
      arrayminus: shown.map((row) => row[key].rate - row[key].ci_low),
    },
    text: shown.map((row) => `${row[key].errors}/${row[key].n} trials`),
    hovertemplate: "%{x}: %{y:.1%} (%{text})<extra>%{fullData.name}</extra>",
  };
}

function drawCharts(data) {
  if (!window.Plotly) return;
  const margin = { t: 30, r: 10, b: 60, l: 60 };

  const progress = data.progress;
  const target = progress.length ? progress[0].target : null;
  const progressTraces = [
    { type: "bar", name: "completed", x: progress.map((p) => p.model),
      y: progress.map((p) => p.completed), marker: { color: "#2e8b57" } },
    { type: "bar", name: "active", x: progress.map((p) => p.model),
      y: progress.map((p) => p.active), marker: { color: "#8fb3e8" } },
  ];
  const progressLayout = {
    barmode: "stack", margin, yaxis: { title: { text: "sessions" } },
    legend: LEGEND };
  if (target) {
    progressLayout.shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: target,
      y1: target, line: { dash: "dash", color: "#555" } }];
    progressLayout.annotations = [{
      xref: "paper", x: 1, y: target, text: `target ${target}`,
      showarrow: false, yanchor: "bottom", xanchor: "right" }];
  }
  window.Plotly.react("chart-progress", progressTraces, progressLayout, PLOT_CONFIG);

  const rows = data.error_rates.rows;
  const errorTraces = ["fake", "real", "overall"].map((key) => errorBars(rows, key));
  window.Plotly.react("chart-errors", errorTraces, {
    margin, yaxis: { title: { text: "error rate" }, range: [0, 1], tickformat: ".0%" },
    // Side by side within a model, so that the intervals do not overlap.
    scattermode: "group", scattergap: 0.6,
    legend: LEGEND,
    shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.5, y1: 0.5,
      line: { dash: "dot", color: "#999" } }],
  }, PLOT_CONFIG);

  const rt = data.response_times;
  const last = rt.bin_starts_ms.length - 1;
  const rtTraces = ["real", "generated"].map((key) => ({
    type: "bar", name: `${key} images`, opacity: 0.75,
    x: rt.bin_starts_ms.map((start) => start + rt.bin_ms / 2),
    y: rt.counts[key], width: rt.bin_ms,
    customdata: rt.bin_starts_ms.map((start, i) =>
      (i === last ? `≥ ${start} ms` : `${start}–${start + rt.bin_ms} ms`)),
    hovertemplate: "%{customdata}: %{y} trials<extra>%{fullData.name}</extra>",
    marker: { color: key === "real" ? COLOURS.real : COLOURS.fake },
  }));
  window.Plotly.react("chart-rt", rtTraces, {
    barmode: "overlay", margin, legend: LEGEND,
    xaxis: {
      title: {
        text: `response time (ms); the last bar holds ${rt.max_ms} ms and more`,
      },
      range: [0, rt.max_ms + rt.bin_ms], dtick: 500 },
    yaxis: { title: { text: "trials" } },
  }, PLOT_CONFIG);
}

function draw(data) {
  drawSummary(data);
  drawErrorTable(data);
  drawTables(data);
  drawCharts(data);
  const updated = document.getElementById("updated");
  const at = data.generated_at.replace("T", " ");
  updated.textContent = `Updated ${at}; refreshes every ${refreshMs / 1000} s.`;
  updated.parentElement.classList.remove("stale");
  root.dataset.loaded = "true";
}

async function refresh() {
  if (inFlight) return;
  inFlight = true;
  try {
    const response = await fetch(dataUrl, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (response.status === 401) {
      window.location.assign(loginUrl);
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    draw(await response.json());
  } catch (error) {
    const updated = document.getElementById("updated");
    updated.textContent = `Could not refresh (${error.message}); retrying.`;
    updated.parentElement.classList.add("stale");
  } finally {
    inFlight = false;
  }
}

function schedule() {
  clearInterval(timer);
  // A hidden tab does not poll; it refreshes as soon as it is shown again.
  if (document.visibilityState === "visible") {
    timer = setInterval(refresh, refreshMs);
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh();
  schedule();
});

refresh();
schedule();

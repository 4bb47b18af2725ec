// The console's page: the grid of migrations (/) and one migration's details
// (/migrations/NAME), refreshed every 2 s from the JSON API; actions are POSTs with the CSRF token.
import { esc, getJson, post } from "./common.js";
import { showCreate } from "./create.js";

const main = document.getElementById("main");
const POLL_MS = 2000;

const time = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const seconds = (s) => {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${Number(s).toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
};
const bytes = (n) => {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
};
const count = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString());

// ---- grid
let filter = new URLSearchParams(location.search).get("filter") === "All" ? "All" : "Active";

function renderGrid(data) {
  const rows = data.migrations
    .map(
      (m) => `<tr data-name="${esc(m.name)}">
      <td><a href="/migrations/${encodeURIComponent(m.name)}">${esc(m.name)}</a></td>
      <td class="state-${esc(m.state)}">${esc(m.state)}<br><small>${esc(m.substate)}</small></td>
      <td>${esc(m.migrationMode)}</td><td>${esc(m.migrationOption)}</td>
      <td>${esc(m.sourceServer)}</td><td>${esc(m.sourceServerType)}</td>
      <td>${esc(m.databases.join(", "))}</td>
      <td class="num">${seconds(m.durationSeconds)}</td><td>${time(m.startedOn)}</td>
      <td class="num latency">${m.migrationMode === "Online" ? seconds(m.latencySeconds) : "—"}</td></tr>`,
    )
    .join("");
  main.querySelector("#grid-body").innerHTML =
    rows ||
    `<tr><td colspan="10">No ${filter === "Active" ? "active " : ""}migrations on this server.</td></tr>`;
  main.querySelector("#updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function showGrid() {
  document.title = "Migrations · pgmigrate";
  main.innerHTML = `<h1>Migrations</h1>
  <div class="toolbar"><a href="/create" id="create-link" class="button">Create migration</a><label for="filter">Show</label>
    <select id="filter"><option value="Active">Active</option><option value="All">All</option></select>
    <span id="updated" aria-live="off"></span><span id="grid-error" class="error" role="alert"></span></div>
  <div class="scroll"><table id="grid"><thead><tr>
    <th scope="col">Name</th><th scope="col">Status</th><th scope="col">Migration mode</th>
    <th scope="col">Migration option</th><th scope="col">Source server</th><th scope="col">Source server type</th>
    <th scope="col">Databases</th><th scope="col" class="num">Duration</th><th scope="col">Start time</th>
    <th scope="col" class="num">Latency</th></tr></thead><tbody id="grid-body"></tbody></table></div>`;
  const select = main.querySelector("#filter");
  select.value = filter;
  select.addEventListener("change", () => {
    filter = select.value;
    history.replaceState(null, "", filter === "All" ? "/?filter=All" : "/");
    refresh();
  });
  const refresh = async () => {
    try {
      renderGrid(await getJson(`/api/migrations?filter=${filter}`));
      main.querySelector("#grid-error").textContent = "";
    } catch (err) {
      main.querySelector("#grid-error").textContent = err.message;
    }
  };
  return refresh;
}

// ---- details
let chart;
let current;

function checksTable(checks) {
  if (!checks.length) return "<p>No checks.</p>";
  return `<table><thead><tr><th scope="col">Check</th><th scope="col">Result</th><th scope="col">Message</th></tr></thead><tbody>${checks
    .map(
      (c) =>
        `<tr><td>${esc(c.type)}</td><td class="check-${esc(c.state)}">${esc(c.state)}</td><td>${c.messages.map(esc).join("<br>") || "—"}</td></tr>`,
    )
    .join("")}</tbody></table>`;
}

function validationSection(v) {
  if (!v) return "<p>No validation results yet.</p>";
  return `<p>Overall: <span class="check-${esc(v.status)}">${esc(v.status)}</span></p>
    <h3>Server level</h3>${checksTable(v.serverLevel)}
    ${v.databaseLevel.map((d) => `<h3>Database ${esc(d.databaseName)}</h3>${checksTable(d.summary)}`).join("")}`;
}

function databasesSection(outputs, tables) {
  const dbs = Object.values(outputs.dbDetails);
  if (!dbs.length) return "<p>No database progress yet.</p>";
  return `<div class="scroll"><table id="databases"><thead><tr><th scope="col">Database</th><th scope="col">State</th>
    <th scope="col" class="num">Queued</th><th scope="col" class="num">Loading</th><th scope="col" class="num">Completed</th><th scope="col" class="num">Errored</th>
    <th scope="col">Copy</th><th scope="col" class="num">ETA</th>
    <th scope="col" class="num">CDC inserts</th><th scope="col" class="num">CDC updates</th><th scope="col" class="num">CDC deletes</th>
    <th scope="col" class="num">Applied changes</th><th scope="col" class="num">Incoming changes</th><th scope="col" class="num">Latency</th></tr></thead><tbody>
    ${dbs
      .map(
        (
          d,
        ) => `<tr data-database="${esc(d.databaseName)}"><td>${esc(d.databaseName)}</td><td>${esc(d.migrationState)}<br><small>${esc(d.message)}</small></td>
      <td class="num">${count(d.fullLoadQueuedTables)}</td><td class="num">${count(d.fullLoadLoadingTables)}</td>
      <td class="num completed">${count(d.fullLoadCompletedTables)}</td><td class="num">${count(d.fullLoadErroredTables)}</td>
      <td>${d.fullLoadPercent === null ? "—" : `<progress max="100" value="${d.fullLoadPercent}" aria-label="copy of ${esc(d.databaseName)}"></progress> ${d.fullLoadPercent} % · ${bytes(d.fullLoadBytesCopied)} of ${bytes(d.fullLoadTotalBytes)}`}</td>
      <td class="num">${seconds(d.fullLoadEtaSeconds)}</td>
      <td class="num">${count(d.cdcInsertCounter)}</td><td class="num">${count(d.cdcUpdateCounter)}</td><td class="num">${count(d.cdcDeleteCounter)}</td>
      <td class="num applied">${count(d.appliedChanges)}</td><td class="num">${count(d.incomingChanges)}</td><td class="num">${seconds(d.latencySeconds)}</td></tr>`,
      )
      .join("")}</tbody></table></div>
    ${Object.entries(tables)
      .map(
        ([
          db,
          rows,
        ]) => `<details><summary>Tables of ${esc(db)} (${rows.length})</summary><table><thead><tr><th scope="col">Table</th><th scope="col">State</th><th scope="col" class="num">Rows</th><th scope="col" class="num">Bytes</th></tr></thead><tbody>
        ${rows.map((t) => `<tr><td>${esc(t.schema)}.${esc(t.name)}</td><td>${esc(t.state)}${t.error ? `: ${esc(t.error)}` : ""}</td><td class="num">${count(t.rows)}</td><td class="num">${bytes(t.bytes)} (${t.percent} %)</td></tr>`).join("")}</tbody></table></details>`,
      )
      .join("")}`;
}

function verificationSection(v) {
  if (!v) return "<p>No verification yet.</p>";
  return `<p>Overall: ${esc(v.status)}</p><table id="verification"><thead><tr><th scope="col">Database</th><th scope="col">Table</th><th scope="col">Method</th>
    <th scope="col" class="num">Source rows</th><th scope="col" class="num">Target rows</th><th scope="col">Match</th></tr></thead><tbody>
    ${v.tables
      .map(
        (
          t,
        ) => `<tr><td>${esc(t.databaseName)}</td><td>${esc(t.table)}</td><td>${esc(t.method)}</td><td class="num">${count(t.sourceRows)}</td><td class="num">${count(t.targetRows)}</td>
      <td>${t.skippedReason ? `skipped: ${esc(t.skippedReason)}` : t.match ? "yes" : `NO ${esc(t.difference ?? "")}`}</td></tr>`,
      )
      .join("")}</tbody></table>`;
}

function eventsList(events) {
  if (!events.length) return "<p>None.</p>";
  return `<ul>${events
    .slice()
    .reverse()
    .map(
      (e) =>
        `<li><time datetime="${esc(e.at)}">${time(e.at)}</time> ${esc(e.level)}${e.database ? ` [${esc(e.database)}]` : ""}: ${esc(e.message)}</li>`,
    )
    .join("")}</ul>`;
}

function runtimesSection(runtimes) {
  if (!runtimes || !runtimes.length) return "<p>None alive (an ended migration has none).</p>";
  return `<table id="runtimes-table"><thead><tr><th>Host</th><th>PID</th><th>Role</th><th>Last heartbeat</th><th>Units copied</th><th>Running now</th></tr></thead><tbody>${runtimes
    .map(
      (r) =>
        `<tr><td>${esc(r.host)}</td><td>${esc(String(r.pid))}</td><td>${r.coordinator ? "coordinator" : "pool"}</td><td><time datetime="${esc(r.lastHeartbeat)}">${time(r.lastHeartbeat)}</time></td><td>${count(r.unitsDone)}</td><td>${r.units.map(esc).join("<br>")}</td></tr>`,
    )
    .join("")}</tbody></table>`;
}

function drawChart(samples) {
  const box = main.querySelector("#latency-chart");
  if (!box || !window.uPlot) return;
  const data = [samples.map((s) => s[0]), samples.map((s) => s[1])];
  if (!chart) {
    chart = new window.uPlot(
      {
        width: Math.min(box.clientWidth || 800, 900),
        height: 200,
        scales: { x: { time: true } },
        series: [{}, { label: "Latency (s)", stroke: "#0b3d6b", width: 2 }],
        axes: [{}, { label: "seconds" }],
      },
      data,
      box,
    );
  } else chart.setData(data);
}

const ENDED = ["Succeeded", "Failed", "ValidationFailed", "Canceled"];

function statesSection(states) {
  if (!states.length) return "<p>No state recorded yet.</p>";
  return `<table id="states-table"><thead><tr><th scope="col">State</th><th scope="col">Substate</th><th scope="col">Entered</th><th scope="col" class="num">Time in state</th></tr></thead><tbody>
    ${states
      .map((st, i) => {
        const last = i === states.length - 1;
        const span =
          last && ENDED.includes(st.state) ? "—" : `${seconds(st.seconds)}${last ? " so far" : ""}`;
        return `<tr><td class="state-${esc(st.state)}">${esc(st.state)}</td><td>${esc(st.substate)}</td><td><time datetime="${esc(st.enteredAt)}">${time(st.enteredAt)}</time></td><td class="num">${span}</td></tr>`;
      })
      .join("")}</tbody></table>`;
}

function pendingChanges(outputs) {
  return Object.values(outputs.dbDetails).reduce((n, d) => n + (d.incomingChanges ?? 0), 0);
}

function renderDetails(data) {
  const o = data.outputs;
  current = data;
  main.querySelector("#summary").innerHTML = `
    <div class="card">Status<b class="state-${esc(o.state)}" id="state">${esc(o.state)}</b><span id="substate">${esc(o.substate)}</span></div>
    <div class="card">Mode / option<b>${esc(o.migrationMode)}</b>${esc(o.migrationOption)}</div>
    <div class="card">Latency<b id="latency">${o.migrationMode === "Online" ? seconds(o.latencySeconds) : "—"}</b>pending changes ${count(pendingChanges(o))}</div>
    <div class="card">Started<b>${time(o.startedOn)}</b>ended ${time(o.endedOn)}</div>
    ${o.cutoverLsn ? `<div class="card">Cutover LSN<b>${esc(o.cutoverLsn)}</b></div>` : ""}
    ${o.error ? `<div class="card error">Error<b>${esc(o.error)}</b></div>` : ""}`;
  const ended = ENDED.includes(o.state);
  main.querySelector("#cutover").disabled = !(
    o.state === "WaitingForUserAction" && o.migrationMode === "Online"
  );
  main.querySelector("#cancel").disabled = ended;
  main.querySelector("#states").innerHTML = statesSection(data.states);
  main.querySelector("#validation").innerHTML = validationSection(o.validation);
  main.querySelector("#dbs").innerHTML = databasesSection(o, data.tables);
  main.querySelector("#verify").innerHTML = verificationSection(o.verification);
  main.querySelector("#runtimes").innerHTML = runtimesSection(o.runtimes);
  main.querySelector("#events").innerHTML = eventsList(o.events);
  main.querySelector("#warnings").innerHTML = eventsList(o.warnings);
  drawChart(data.latencyHistory);
}

function confirmAction(name, action) {
  const dialog = document.getElementById("confirm");
  const o = current.outputs;
  document.getElementById("confirm-error").textContent = "";
  if (action === "cutover") {
    document.getElementById("confirm-title").textContent = `Cut over ${name}?`;
    document.getElementById("confirm-body").innerHTML = `
      <p>Stop writes to the source databases first: changes committed after the cutover point are not migrated.</p>
      <p>Current latency: <b id="confirm-latency">${seconds(o.latencySeconds)}</b><br>
      Pending changes (received, not yet applied): <b id="confirm-pending">${count(pendingChanges(o))}</b></p>`;
    document.getElementById("confirm-yes").textContent = "Cut over";
  } else {
    document.getElementById("confirm-title").textContent = `Cancel ${name}?`;
    const drops = current.cancelDrops;
    document.getElementById("confirm-body").innerHTML = drops.length
      ? `<p>Canceling rolls the target back: these target databases on ${esc(current.target)} will be <b>dropped</b>:</p><ul id="confirm-drops">${drops.map((d) => `<li>${esc(d)}</li>`).join("")}</ul><p>The source's replication slot and publication are removed.</p>`
      : `<p>No target database is dropped (this migration created none). The source's replication slot and publication are removed.</p>`;
    document.getElementById("confirm-yes").textContent = "Cancel migration";
  }
  dialog.returnValue = "";
  dialog.showModal();
  document.getElementById("confirm-no").focus();
  dialog.onclose = async () => {
    if (dialog.returnValue !== "ok") return;
    try {
      await post(`/api/migrations/${encodeURIComponent(name)}/actions`, { action });
      main.querySelector("#action-status").textContent = `${action} requested`;
    } catch (err) {
      main.querySelector("#action-status").textContent = `${action} refused: ${err.message}`;
    }
  };
}

function showDetails(name) {
  document.title = `${name} · pgmigrate`;
  chart = undefined;
  main.innerHTML = `<p><a href="/">← All migrations</a></p><h1>${esc(name)}</h1>
    <div class="toolbar"><button id="cutover" type="button" disabled>Cutover</button>
    <button id="cancel" type="button" disabled>Cancel migration</button>
    <span id="action-status" role="status"></span><span id="details-error" class="error" role="alert"></span></div>
    <div class="cards" id="summary"></div>
    <h2>States</h2><div id="states"></div>
    <h2>Latency</h2><p><small>Recorded by the worker every 3 s while it streams (kept in the control store; the newest 600 shown).</small></p><div id="latency-chart"></div>
    <h2>Databases</h2><div id="dbs"></div>
    <h2>Runtimes</h2><div id="runtimes"></div>
    <h2>Validation</h2><div id="validation"></div>
    <h2>Verification</h2><div id="verify"></div>
    <h2>Warnings</h2><div id="warnings"></div>
    <h2>Recent events</h2><div id="events"></div>`;
  main.querySelector("#cutover").addEventListener("click", () => confirmAction(name, "cutover"));
  main.querySelector("#cancel").addEventListener("click", () => confirmAction(name, "cancel"));
  return async () => {
    try {
      renderDetails(await getJson(`/api/migrations/${encodeURIComponent(name)}`));
      main.querySelector("#details-error").textContent = "";
    } catch (err) {
      main.querySelector("#details-error").textContent = err.message;
    }
  };
}

const match = /^\/migrations\/([^/]+)$/.exec(location.pathname);
const refresh = match
  ? showDetails(decodeURIComponent(match[1]))
  : location.pathname === "/create"
    ? showCreate(main)
    : showGrid();
const loop = async () => {
  await refresh();
  setTimeout(loop, POLL_MS);
};
loop();

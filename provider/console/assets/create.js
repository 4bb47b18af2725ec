// The Create page (/create): the reference pane's wizard on one page. Test connection runs the
// connectivity check of one server; testing the source lists its databases to pick from. Start
// posts the form as JSON (passwords in the body only) and opens the new migration's details.
import { esc, getJson, post } from "./common.js";

const field = (id, label, input, hint = "") =>
  `<div class="field"><label for="${id}">${label}</label>${input}${hint ? `<small id="${id}-hint">${hint}</small>` : ""}</div>`;
const select = (id, values, chosen, labels = {}) =>
  `<select id="${id}">${values.map((v) => `<option value="${esc(v)}"${v === chosen ? " selected" : ""}>${esc(labels[v] ?? v)}</option>`).join("")}</select>`;

const OPTION_LABELS = {
  Validate: "Validate",
  Migrate: "Migrate",
  ValidateAndMigrate: "Validate and migrate",
};

export function showCreate(main) {
  document.title = "Create a migration · pgmigrate";
  main.innerHTML = `<p><a href="/">← All migrations</a></p><h1>Create a migration</h1><p id="create-loading">Loading…</p>`;
  getJson("/api/create/choices")
    .then((choices) => renderForm(main, choices))
    .catch((err) => {
      main.querySelector("#create-loading").textContent =
        `The form could not be loaded: ${err.message}`;
    });
  // Nothing to refresh: the form is filled in by a person.
  return async () => undefined;
}

function renderForm(main, choices) {
  const target = `${choices.target.host}:${choices.target.port}`;
  main.innerHTML = `<p><a href="/">← All migrations</a></p><h1>Create a migration</h1>
  <form id="create-form" method="post" novalidate>
    <fieldset><legend>Migration</legend>
      ${field("c-name", "Name", `<input id="c-name" autocomplete="off" required aria-describedby="c-name-hint">`, "letters, digits, - and _; unique on this target server")}
      <fieldset class="choices"><legend>Mode</legend>
        ${choices.modes.map((m) => `<label><input type="radio" name="c-mode" value="${esc(m)}"${m === "Online" ? " checked" : ""}> ${esc(m)}</label>`).join("")}
      </fieldset>
      ${field("c-option", "Option", select("c-option", choices.options, "ValidateAndMigrate", OPTION_LABELS))}
    </fieldset>
    <fieldset><legend>Source server</legend>
      ${field("s-host", "Host", `<input id="s-host" autocomplete="off" required>`)}
      ${field("s-port", "Port", `<input id="s-port" type="number" min="1" max="65535" value="5432" required>`)}
      ${field("s-user", "User", `<input id="s-user" autocomplete="off" required>`)}
      ${field("s-password", "Password", `<input id="s-password" type="password" autocomplete="new-password">`)}
      ${field("s-ssl", "SSL mode", select("s-ssl", choices.sslModes, "prefer"))}
      ${field("s-type", "Server type", select("s-type", choices.serverTypes, "OnPremises"))}
      <div class="test"><button type="button" id="test-source">Test connection</button>
        <span id="test-source-result" role="status"></span></div>
    </fieldset>
    <fieldset><legend>Target server ${esc(target)}</legend>
      ${field("t-user", "User", `<input id="t-user" autocomplete="off" value="${esc(choices.target.username)}" required>`)}
      ${field("t-password", "Password", `<input id="t-password" type="password" autocomplete="new-password">`)}
      ${field("t-ssl", "SSL mode", select("t-ssl", choices.sslModes, "prefer"))}
      <div class="test"><button type="button" id="test-target">Test connection</button>
        <span id="test-target-result" role="status"></span></div>
    </fieldset>
    <fieldset id="c-databases"><legend>Databases to migrate</legend>
      <div id="database-list"><p>Test the source connection to list its databases.</p></div>
      <label class="check"><input type="checkbox" id="c-overwrite"> Overwrite databases that already exist on the target (they are dropped first)</label>
    </fieldset>
    <section aria-labelledby="summary-title"><h2 id="summary-title">Summary</h2><dl id="create-summary"></dl></section>
    <p id="create-error" class="error" role="alert"></p>
    <div class="toolbar"><button type="submit" id="start" class="primary">Start migration</button><span id="create-status" role="status"></span></div>
  </form>`;
  const form = main.querySelector("#create-form");
  const value = (id) => main.querySelector(`#${id}`).value.trim();
  const source = () => ({
    host: value("s-host"),
    port: value("s-port"),
    username: value("s-user"),
    password: main.querySelector("#s-password").value,
    sslMode: value("s-ssl"),
    serverType: value("s-type"),
  });
  const targetFields = () => ({
    username: value("t-user"),
    password: main.querySelector("#t-password").value,
    sslMode: value("t-ssl"),
  });
  const picked = () =>
    [...main.querySelectorAll('#database-list input[type="checkbox"]:checked')].map((c) => c.value);
  const mode = () => main.querySelector('input[name="c-mode"]:checked').value;

  const summarize = () => {
    const s = source();
    const t = targetFields();
    const dbs = picked();
    const rows = [
      ["Name", value("c-name") || "—"],
      ["Mode", mode()],
      ["Option", OPTION_LABELS[value("c-option")]],
      [
        "Source",
        `${s.host || "?"}:${s.port || "?"} as ${s.username || "?"} (SSL ${s.sslMode}, ${s.serverType}, password ${s.password ? "given" : "not given"})`,
      ],
      [
        "Target",
        `${target} as ${t.username || "?"} (SSL ${t.sslMode}, password ${t.password ? "given" : "not given"})`,
      ],
      ["Databases", dbs.length ? dbs.join(", ") : "none picked"],
      [
        "Overwrite",
        main.querySelector("#c-overwrite").checked
          ? "yes: existing target databases of these names are dropped"
          : "no",
      ],
    ];
    main.querySelector("#create-summary").innerHTML = rows
      .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`)
      .join("");
  };
  // A message about the previous attempt is stale once the form changes.
  form.addEventListener("input", () => (main.querySelector("#create-error").textContent = ""));
  form.addEventListener("input", summarize);
  form.addEventListener("change", summarize);
  summarize();

  const test = async (role) => {
    const out = main.querySelector(`#test-${role}-result`);
    const button = main.querySelector(`#test-${role}`);
    button.disabled = true;
    out.className = "";
    out.textContent = "Testing…";
    try {
      const result = await post("/api/connections/test", {
        role,
        endpoint: role === "source" ? source() : targetFields(),
      });
      out.className = result.status === "Succeeded" ? "check-Succeeded" : "check-Failed";
      out.textContent = `${result.status}: ${result.message}`;
      if (role === "source" && result.status === "Succeeded") listDatabases(result.databases);
    } catch (err) {
      out.className = "check-Failed";
      out.textContent = `Failed: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  };
  const listDatabases = (names) => {
    const before = new Set(picked());
    main.querySelector("#database-list").innerHTML = names.length
      ? `<ul class="databases">${names
          .map(
            (n, i) =>
              `<li><label><input type="checkbox" id="db-${i}" value="${esc(n)}"${before.has(n) ? " checked" : ""}> ${esc(n)}</label></li>`,
          )
          .join("")}</ul>`
      : "<p>The source has no database to migrate.</p>";
    summarize();
  };
  main.querySelector("#test-source").addEventListener("click", () => test("source"));
  main.querySelector("#test-target").addEventListener("click", () => test("target"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = main.querySelector("#create-error");
    const start = main.querySelector("#start");
    error.textContent = "";
    start.disabled = true;
    main.querySelector("#create-status").textContent = "Starting…";
    try {
      const created = await post("/api/migrations", {
        migrationName: value("c-name"),
        mode: mode(),
        option: value("c-option"),
        source: source(),
        target: targetFields(),
        databases: picked(),
        overwriteDbsInTarget: main.querySelector("#c-overwrite").checked,
      });
      location.assign(`/migrations/${encodeURIComponent(created.name)}`);
    } catch (err) {
      main.querySelector("#create-status").textContent = "";
      error.textContent = err.message;
      start.disabled = false;
    }
  });
}

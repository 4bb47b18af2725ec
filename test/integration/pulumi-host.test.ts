// The provider inside Pulumi's own dynamic-provider host (@pulumi/pulumi/cmd/dynamic-provider),
// driven over gRPC the way the Pulumi engine drives it: the serialized provider is loaded from
// the `__provider` property in a user's project, every result crosses protobuf Structs, and
// progress reaches the host's stdout, which the engine shows as diagnostics.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as pulumi from "@pulumi/pulumi";
import { ResourceProviderClient } from "@pulumi/pulumi/proto/provider_grpc_pb";
import * as proto from "@pulumi/pulumi/proto/provider_pb";
import { Struct } from "google-protobuf/google/protobuf/struct_pb";
import { migrationProvider } from "../../sdk/postgres-migration";
import { compareDatabases } from "../support/checksum";
import { startPostgres, type PgServer } from "../support/postgres";

type Props = Record<string, unknown>;

const REPO = path.resolve(__dirname, "../../..");
const HOST = require.resolve("@pulumi/pulumi/cmd/dynamic-provider/index.js");
const TYPE = "pulumi-nodejs:dynamic/pgmigrate:PostgresMigration";

/** One unary call to the host. */
function unary<Res>(
  invoke: (callback: (err: grpc.ServiceError | null, res: Res) => void) => unknown,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke((err, res) => (err ? reject(err) : resolve(res)));
  });
}

describe("provider in Pulumi's dynamic-provider host", function () {
  const name = `prov-host-${randomBytes(3).toString("hex")}`;
  const urn = `urn:pulumi:dev::project::${TYPE}::${name}`;
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let host: ChildProcess;
  let client: ResourceProviderClient;
  let providerText: string;
  let hostOutput = "";
  let inputs: Props;
  let state: Props;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-host-"));
    await source.query("CREATE DATABASE tickets");
    await source.query(
      `CREATE TABLE ticket (id bigserial PRIMARY KEY, title text NOT NULL, opened timestamptz DEFAULT now());
       INSERT INTO ticket (title) SELECT 'ticket ' || i FROM generate_series(1, 1000) i`,
      [],
      "tickets",
    );
    const endpoint = (s: PgServer, secret: boolean) => ({
      host: s.host,
      port: s.port,
      username: s.user,
      password: secret ? pulumi.secret(s.password) : s.password,
      sslMode: "disable" as const,
    });
    // As pulumi.dynamic.Resource does: serializeFunction(() => provider).
    const provider = migrationProvider({
      source: endpoint(source, true),
      target: endpoint(target, true),
      databases: ["tickets"],
    });
    const serialized = await pulumi.runtime.serializeFunction(() => provider, {
      allowSecrets: true,
    });
    // A user's project: the package installed; the checkout path in the text unusable.
    const project = path.join(dir, "project");
    fs.mkdirSync(path.join(project, "node_modules"), { recursive: true });
    fs.symlinkSync(REPO, path.join(project, "node_modules", "pulumi-postgres-migration"), "dir");
    const localEntry = JSON.stringify(path.join(REPO, "dist/provider/pulumi/index.js"));
    providerText = serialized.text.split(localEntry).join('"/nonexistent/index.js"');
    inputs = {
      ...endpointInputs(),
      databases: ["tickets"],
      mode: "Online",
      migrationName: name,
      runtime: { logDir: dir },
      __provider: providerText,
    };

    // The host prints its port, then whatever the provider writes (the engine's diagnostics).
    host = spawn(process.execPath, [HOST, "127.0.0.1:1"], {
      cwd: project,
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^PG/.test(k))),
      stdio: ["ignore", "pipe", "pipe"],
    });
    host.stderr?.on("data", (c: Buffer) => (hostOutput += c.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      host.stdout?.on("data", (c: Buffer) => {
        hostOutput += c.toString();
        const first = /^(\d+)\n/.exec(hostOutput);
        if (first) resolve(Number(first[1]));
      });
      host.on("exit", (code) => reject(new Error(`host exited ${code}: ${hostOutput}`)));
    });
    client = new ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const configure = new proto.ConfigureRequest();
    configure.setArgs(Struct.fromJavaScript({}));
    await unary<proto.ConfigureResponse>((cb) => client.configure(configure, cb));
  });

  after(async () => {
    client?.close();
    host?.kill();
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function endpointInputs(): Props {
    const e = (s: PgServer) => ({
      host: s.host,
      port: s.port,
      username: s.user,
      password: s.password,
      sslMode: "disable",
    });
    return { source: e(source), target: e(target) };
  }

  it("check reports a bad property through the host", async () => {
    const request = new proto.CheckRequest();
    request.setUrn(urn);
    request.setOlds(Struct.fromJavaScript({}));
    request.setNews(Struct.fromJavaScript({ ...inputs, databases: [], mode: "online" }));
    const response = await unary<proto.CheckResponse>((cb) => client.check(request, cb));
    const failures = response.getFailuresList().map((f) => [f.getProperty(), f.getReason()]);
    assert.deepEqual(
      failures.map(([p]) => p),
      ["databases", "mode"],
    );
  });

  it("creates: waits for the cutover, prints progress, returns outputs without passwords", async () => {
    const request = new proto.CreateRequest();
    request.setUrn(urn);
    request.setProperties(Struct.fromJavaScript(inputs as never));
    const response = await unary<proto.CreateResponse>((cb) => client.create(request, cb));
    assert.equal(response.getId(), name);
    state = response.getProperties()?.toJavaScript() as Props;
    assert.equal(state.state, "WaitingForUserAction");
    assert.equal(state.__provider, providerText, "the host keeps the provider in the outputs");
    const { __provider: _provider, ...outputs } = state;
    void _provider;
    const text = JSON.stringify(outputs);
    assert.ok(!text.includes(source.password) && !text.includes(target.password));
    assert.match(hostOutput, new RegExp(`pgmigrate ${name}: .*WaitingForUserAction`));
  });

  it("refreshes and cuts over (update), then deletes with the remembered passwords", async () => {
    const read = new proto.ReadRequest();
    read.setId(name);
    read.setUrn(urn);
    read.setProperties(Struct.fromJavaScript(state as never));
    const refreshed = await unary<proto.ReadResponse>((cb) => client.read(read, cb));
    assert.equal(refreshed.getId(), name);
    assert.equal(refreshed.getProperties()?.toJavaScript().state, "WaitingForUserAction");

    await source.query(
      "INSERT INTO ticket (title) VALUES ('written after the copy')",
      [],
      "tickets",
    );
    const diff = new proto.DiffRequest();
    diff.setId(name);
    diff.setUrn(urn);
    diff.setOlds(Struct.fromJavaScript(state as never));
    diff.setNews(Struct.fromJavaScript({ ...inputs, cutover: true } as never));
    const diffed = await unary<proto.DiffResponse>((cb) => client.diff(diff, cb));
    assert.equal(diffed.getChanges(), proto.DiffResponse.DiffChanges.DIFF_SOME);
    assert.deepEqual(diffed.getReplacesList(), []);
    assert.match(hostOutput, /cutover requested; now WaitingForUserAction/);

    const update = new proto.UpdateRequest();
    update.setId(name);
    update.setUrn(urn);
    update.setOlds(Struct.fromJavaScript(state as never));
    update.setNews(Struct.fromJavaScript({ ...inputs, cutover: true } as never));
    const updated = await unary<proto.UpdateResponse>((cb) => client.update(update, cb));
    state = updated.getProperties()?.toJavaScript() as Props;
    assert.equal(state.state, "Succeeded");
    assert.deepEqual(
      (await compareDatabases(source, "tickets", target, "tickets")).differences,
      [],
    );

    const del = new proto.DeleteRequest();
    del.setId(name);
    del.setUrn(urn);
    del.setProperties(Struct.fromJavaScript(state as never));
    await unary<unknown>((cb) => client.delete(del, cb));
    const rows = await target.query("SELECT 1 FROM pgmigrate.migrations WHERE name = $1", [name]);
    assert.equal(rows.length, 0, "forgotten");
    const [{ n }] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM ticket",
      [],
      "tickets",
    );
    assert.equal(Number(n), 1001, "migrated data kept");
  });
});

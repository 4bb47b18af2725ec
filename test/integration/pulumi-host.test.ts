// The provider inside Pulumi's own dynamic-provider host (@pulumi/pulumi/cmd/dynamic-provider),
// driven over gRPC the way the Pulumi engine drives it: the serialized provider is loaded from
// the `__provider` property in a user's project, every result crosses protobuf Structs, and
// progress reaches the engine's Log service (here one of the SDK's generated Engine services),
// attached to the resource's URN.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as pulumi from "@pulumi/pulumi";
import { EngineService } from "@pulumi/pulumi/proto/engine_grpc_pb";
import { LogSeverity, type LogRequest } from "@pulumi/pulumi/proto/engine_pb";
import { ResourceProviderClient } from "@pulumi/pulumi/proto/provider_grpc_pb";
import * as proto from "@pulumi/pulumi/proto/provider_pb";
import { Empty } from "google-protobuf/google/protobuf/empty_pb";
import { Struct } from "google-protobuf/google/protobuf/struct_pb";
import { migrationProvider, RESOURCE_TYPE } from "../../sdk/postgres-migration";
import { compareDatabases } from "../support/checksum";
import { startPostgres, type PgServer } from "../support/postgres";

type Props = Record<string, unknown>;

const REPO = path.resolve(__dirname, "../../..");
const HOST = require.resolve("@pulumi/pulumi/cmd/dynamic-provider/index.js");

/** A diagnostic as the engine received it. */
interface Diagnostic {
  severity: number;
  message: string;
  urn: string;
}

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
  const urn = `urn:pulumi:dev::project::${RESOURCE_TYPE}::${name}`;
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let host: ChildProcess;
  let client: ResourceProviderClient;
  let providerText: string;
  let hostOutput = "";
  let engine: grpc.Server;
  const diagnostics: Diagnostic[] = [];
  let inputs: Props;
  let state: Props;

  /** The messages the engine received for the resource since `from`. */
  const resourceMessages = (from = 0): string[] =>
    diagnostics.slice(from).map((d) => {
      assert.equal(d.urn, urn, `"${d.message}" is attached to the resource`);
      return d.message;
    });

  before(async () => {
    // The engine side of the Log RPC, from the SDK's own generated service definition.
    engine = new grpc.Server();
    engine.addService(EngineService, {
      log(call: grpc.ServerUnaryCall<LogRequest, Empty>, done: grpc.sendUnaryData<Empty>) {
        const r = call.request;
        diagnostics.push({ severity: r.getSeverity(), message: r.getMessage(), urn: r.getUrn() });
        done(null, new Empty());
      },
    } as never);
    const enginePort = await new Promise<number>((resolve, reject) =>
      engine.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
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
    const provider = migrationProvider(
      {
        source: endpoint(source, true),
        target: endpoint(target, true),
        databases: ["tickets"],
      },
      urn,
    );
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

    // Started as pulumi-resource-pulumi-nodejs starts it: the engine's address as first argument.
    host = spawn(process.execPath, [HOST, `127.0.0.1:${enginePort}`], {
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
    engine?.forceShutdown();
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

  it("creates: waits for the cutover, reports progress on the resource, returns outputs without passwords", async () => {
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
    // Every diagnostic reached the engine before create returned, on the resource's URN.
    const messages = resourceMessages();
    assert.match(messages[0], new RegExp(`^pgmigrate ${name}: started Online migration`));
    assert.match(
      messages[messages.length - 1],
      new RegExp(
        `^pgmigrate ${name}: WaitingForUserAction/WaitingForCutoverTrigger, tables 1/1 done`,
      ),
    );
    assert.ok(diagnostics.every((d) => d.severity === LogSeverity.INFO));
    assert.ok(!hostOutput.includes(`pgmigrate ${name}`), "nothing fell back to stdout");
  });

  it("refreshes and cuts over (update), then deletes with the remembered passwords", async () => {
    const before = diagnostics.length;
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
    assert.ok(
      resourceMessages(before).some((m) => /cutover requested; now WaitingForUserAction/.test(m)),
    );

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
    const messages = resourceMessages(before);
    assert.match(messages[0], /WaitingForUserAction\/WaitingForCutoverTrigger/, "refresh's line");
    assert.equal(messages[messages.length - 1], `pgmigrate ${name}: removed (Succeeded)`);
  });
});

// Contract of the diagnostics transport with the installed @pulumi/pulumi: the private files and
// generated-client methods engine-log.ts relies on exist with the expected shape, inside the
// version range it declares, and a message crosses a real gRPC Engine service with its URN.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import {
  bindEngine,
  connectEngineLog,
  hostEngineAddress,
  PULUMI_PRIVATE_PATHS,
  pulumiPackageDir,
  SUPPORTED_PULUMI_VERSIONS,
  type EngineBinding,
} from "../../provider/pulumi/engine-log";

const REPO = path.resolve(__dirname, "../../..");
const pulumiDir = pulumiPackageDir();
const installed: string = JSON.parse(
  fs.readFileSync(path.join(pulumiDir, "package.json"), "utf8"),
).version;

/** `version` inside a caret range `^M.m.p` (the only form the peerDependency uses). */
function insideCaretRange(version: string, range: string): boolean {
  const caret = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  assert.ok(caret, `SUPPORTED_PULUMI_VERSIONS is a caret range, not ${range}`);
  const [major, minor, patch] = version.split(/[.+-]/).slice(0, 3).map(Number);
  const [lowMajor, lowMinor, lowPatch] = caret.slice(1).map(Number);
  if (major !== lowMajor) return false;
  return minor !== lowMinor ? minor > lowMinor : patch >= lowPatch;
}

/** What an RPC server received, in order. */
interface Received {
  severity: number;
  message: string;
  urn: string;
}

describe("engine log transport: contract with @pulumi/pulumi", () => {
  const moved = (what: string) =>
    `@pulumi/pulumi ${installed} moved ${what}: update provider/pulumi/engine-log.ts ` +
    `(and SUPPORTED_PULUMI_VERSIONS) or provider diagnostics are silently lost`;

  it("declares the package's peerDependency and the installed version is inside it", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
    assert.equal(
      SUPPORTED_PULUMI_VERSIONS,
      pkg.peerDependencies["@pulumi/pulumi"],
      "engine-log.ts and package.json's peerDependency name the same range",
    );
    assert.ok(
      insideCaretRange(installed, SUPPORTED_PULUMI_VERSIONS),
      `@pulumi/pulumi ${installed} is outside the range engine-log.ts was checked against ` +
        `(${SUPPORTED_PULUMI_VERSIONS}): re-check its private paths and widen the range`,
    );
  });

  it("finds every private file it loads", () => {
    for (const [role, file] of Object.entries(PULUMI_PRIVATE_PATHS)) {
      assert.ok(fs.existsSync(path.join(pulumiDir, file)), moved(`${role} (${file})`));
    }
  });

  it("reads the engine address where the dynamic-provider host gets it: its first argument", () => {
    const host = path.join(pulumiDir, PULUMI_PRIVATE_PATHS.host);
    assert.match(fs.readFileSync(host, "utf8"), /main\(process\.argv\.slice\(2\)\)/, moved("argv"));
    // As Pulumi's pulumi-resource-pulumi-nodejs starts it: node <require.resolve(host)> <engine>.
    const script = require.resolve("@pulumi/pulumi/cmd/dynamic-provider");
    assert.equal(script, host);
    assert.equal(hostEngineAddress(["node", script, "127.0.0.1:40123"]), "127.0.0.1:40123");
    assert.equal(hostEngineAddress(["node", script]), undefined);
    assert.equal(hostEngineAddress(["node", "/srv/app.js", "127.0.0.1:40123"]), undefined);
  });

  it("binds the generated engine client and LogRequest with the methods it calls", () => {
    const binding = bindEngine("127.0.0.1:1", pulumiDir);
    try {
      assert.equal(typeof binding.client.log, "function", moved("EngineClient.log"));
      assert.equal(typeof binding.client.close, "function", moved("EngineClient.close"));
      const request = new binding.LogRequest();
      for (const setter of ["setSeverity", "setMessage", "setUrn"] as const) {
        assert.equal(typeof request[setter], "function", moved(`LogRequest.${setter}`));
      }
      const levels = [binding.severity.INFO, binding.severity.WARNING, binding.severity.ERROR];
      assert.ok(
        levels.every((l) => Number.isInteger(l)),
        moved("LogSeverity INFO/WARNING/ERROR"),
      );
      assert.equal(new Set(levels).size, 3);
    } finally {
      binding.client.close();
    }
  });

  describe("round trip through a gRPC Engine service of the installed SDK", () => {
    const rpc = require(path.join(pulumiDir, PULUMI_PRIVATE_PATHS.engineClient));
    const pb = require(path.join(pulumiDir, PULUMI_PRIVATE_PATHS.engineMessages));
    const empty = require(require.resolve("google-protobuf/google/protobuf/empty_pb"));
    let server: grpc.Server;
    let address: string;
    const received: Received[] = [];

    before(async () => {
      server = new grpc.Server();
      server.addService(rpc.EngineService, {
        log(
          call: { request: { getSeverity(): number; getMessage(): string; getUrn(): string } },
          done: (err: null, res: unknown) => void,
        ) {
          const r = call.request;
          received.push({ severity: r.getSeverity(), message: r.getMessage(), urn: r.getUrn() });
          done(null, new empty.Empty());
        },
      });
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
          err ? reject(err) : resolve(p),
        ),
      );
      address = `127.0.0.1:${port}`;
    });

    after(() => server?.forceShutdown());

    it("delivers each message, in order, with its severity and the resource's URN", async () => {
      const urn = "urn:pulumi:dev::shop::pulumi-nodejs:dynamic/pgmigrate:PostgresMigration::orders";
      let binding: EngineBinding | undefined;
      const log = connectEngineLog(address, () => (binding = bindEngine(address, pulumiDir)));
      log.log("info", "pgmigrate orders: started", urn);
      log.log("warning", "pgmigrate orders: dropping database orders", urn);
      log.log("error", "stack-level", undefined);
      await log.flush();
      binding?.client.close();
      assert.deepEqual(received, [
        { severity: pb.LogSeverity.INFO, message: "pgmigrate orders: started", urn },
        {
          severity: pb.LogSeverity.WARNING,
          message: "pgmigrate orders: dropping database orders",
          urn,
        },
        { severity: pb.LogSeverity.ERROR, message: "stack-level", urn: "" },
      ]);
    });

    it("writes to stdout what no engine acknowledges", async () => {
      const nowhere = "127.0.0.1:1"; // nothing listens there
      let binding: EngineBinding | undefined;
      const log = connectEngineLog(nowhere, () => (binding = bindEngine(nowhere, pulumiDir)));
      const written: string[] = [];
      const write = process.stdout.write;
      process.stdout.write = ((chunk: string) => written.push(chunk) > 0) as typeof write;
      try {
        log.log("warning", "nobody listens", "urn:x");
        await log.flush();
      } finally {
        process.stdout.write = write;
        binding?.client.close();
      }
      assert.deepEqual(written, ["warning: nobody listens\n"]);
    });
  });
});

// Runs the built pgmigrate command line as a user would: a child process whose passwords only
// ever travel in its environment.
import { spawn } from "node:child_process";
import path from "node:path";

/** The compiled CLI entry. */
export const CLI_MAIN = path.resolve(__dirname, "../../provider/cli/main.js");

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `pgmigrate args` with exactly `env` plus PATH, HOME and TMPDIR: nothing else of the test
 * runner's environment (no stray PGPASSWORD) reaches it.
 */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

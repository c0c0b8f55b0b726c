/**
 * The local demo: a real PostgreSQL and Colonies server on loopback, a sleep executor started with the real
 * `colonyos-executor` command, and a batch of processes run with the official `colonies` CLI.
 * Usage: bash scripts/demo.sh [--keep]
 */
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { startColoniesServer } from "../test/support/colonies-server.js";
import { waitFor } from "../test/support/ports.js";

const { values } = parseArgs({ options: { keep: { type: "boolean", default: false } } });
const step = (text: string) => console.log(`\n\x1b[1m==> ${text}\x1b[0m`);
const started = Date.now();

step("Starting PostgreSQL and a Colonies server on loopback");
const server = await startColoniesServer();
console.log(`Colonies server at http://127.0.0.1:${server.port}, colony ${server.colonyName}`);

step("Starting a sleep executor (2 slots) with colonyos-executor");
const executor = spawn(process.execPath, ["dist/src/cli.js", "sleep"], {
  env: {
    ...server.env,
    PATH: process.env.PATH ?? "",
    COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
    COLONIES_EXECUTOR_NAME: "demo-sleep",
    EXECUTOR_CONCURRENCY: "2",
    EXECUTOR_LOG_FORMAT: "json",
  },
  stdio: ["ignore", "ignore", "inherit"],
});
await waitFor("the executor", async () =>
  (await server.cli(["executor", "ls"])).stdout.includes("demo-sleep"),
);
console.log((await server.cli(["function", "ls"])).stdout);

step("Running 6 sleep processes with the official CLI: colonies function exec --func sleep --args 200 ...");
const t0 = Date.now();
const runs = await Promise.all(
  Array.from({ length: 6 }, () =>
    server.cli([
      "function",
      "exec",
      "--func",
      "sleep",
      "--args",
      "200",
      "--targettype",
      "sleep",
      "--wait",
      "--out",
    ]),
  ),
);
console.log(`${runs.length} processes done in ${Date.now() - t0} ms (2 slots x 200 ms each)`);

step("A bad call fails with a clear message, and the executor keeps serving");
const bad = await server
  .cli(["function", "exec", "--func", "sleep", "--args", "soon", "--targettype", "sleep", "--wait"])
  .catch((error: { stderr?: string }) => ({ stdout: "", stderr: error.stderr ?? "" }));
console.log(/Error=\[([^\]]*)\]/.exec(bad.stderr)?.[1] ?? bad.stderr.trim());

step("Summary");
console.log((await server.cli(["process", "pss", "--count", "10"]).catch(() => ({ stdout: "" }))).stdout);
console.log(`demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);

if (values.keep) {
  console.log(`\nStill running. Talk to it with:
  export COLONIES_SERVER_HOST=127.0.0.1 COLONIES_SERVER_PORT=${server.port} COLONIES_TLS=false
  export COLONIES_COLONY_NAME=${server.colonyName} COLONIES_PRVKEY=${server.userPrvKey}
  colonies function exec --func sleep --args 100 --targettype sleep --wait
Press Ctrl-C to stop.`);
  await new Promise((resolve) => process.once("SIGINT", resolve));
}
executor.kill("SIGTERM");
await new Promise((resolve) => executor.once("exit", resolve));
await server.stop();

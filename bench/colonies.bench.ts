/**
 * Runtime benchmark, all in one run against one local Colonies server (real PostgreSQL + real server), printing
 * ratios against baselines measured side by side:
 *  (a) bare client loop: assign + close with our Colonies client, no runtime — the floor;
 *  (b) sleep("0") through the executor runtime with one slot, vs (a);
 *  (c) sleep("50") with 8 slots vs 1 slot;
 *  (d) the same sleep("0") workload through a minimal executor written with the Colonies Go SDK;
 *  idle RSS of the real `colonyos-executor sleep` process.
 * Usage: npm run bench [-- --count 200]
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type ColoniesServer, startColoniesServer } from "../peers/colonies-server.js";
import { startRuntime, submit, uniqueName } from "../peers/executor.js";
import { ColoniesClient } from "../src/colonies/client.js";
import { generatePrivateKey, idOf } from "../src/colonies/crypto.js";
import type { ExecutorModule, ParsedArgs, ProcessContext } from "../src/executor/types.js";
import { sleepExecutor } from "../src/executors/sleep.js";

const { values } = parseArgs({ options: { count: { type: "string", default: "200" } } });
const COUNT = Number(values.count);

async function submitMany(server: ColoniesServer, type: string, ms: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => submit(server, type, "sleep", [ms])));
  }
}

/** (a) The floor: our client alone, one process at a time. */
async function bareLoop(server: ColoniesServer, n: number): Promise<number> {
  const type = uniqueName("bare");
  const key = generatePrivateKey();
  const name = uniqueName("bare");
  const client = new ColoniesClient({ host: server.host, port: server.port, tls: false });
  await client.addExecutor(
    { executorid: idOf(key), executortype: type, executorname: name, colonyname: server.colonyName },
    server.colonyPrvKey,
  );
  await client.approveExecutor(server.colonyName, name, server.colonyPrvKey);
  await submitMany(server, type, "0", n);
  let started = 0;
  for (let i = 0; i < n; i++) {
    const process = await client.assign(server.colonyName, 10, key);
    started ||= performance.now();
    await client.closeSuccessful(process.processid, [{ milliseconds: 0 }], key);
  }
  const elapsed = performance.now() - started;
  await client.removeExecutor(server.colonyName, name, server.colonyPrvKey);
  return elapsed;
}

/**
 * Pre-submits n sleep(ms) processes, then times the runtime from its first assignment until all n are
 * reported (registration excluded, as for the other loops).
 */
async function runtimeLoop(server: ColoniesServer, n: number, ms: string, slots: number): Promise<number> {
  const type = uniqueName("bench");
  await submitMany(server, type, ms, n);
  let started = 0;
  const timed: ExecutorModule = {
    ...sleepExecutor,
    async create(env, logger) {
      const instance = await sleepExecutor.create(env, logger);
      const functions = instance.functions.map((fn) => ({
        ...fn,
        handler: (args: ParsedArgs, ctx: ProcessContext) => {
          started ||= performance.now();
          return fn.handler(args, ctx);
        },
      }));
      return { ...instance, functions };
    },
  };
  const runtime = await startRuntime(server, timed, {
    COLONIES_EXECUTOR_TYPE: type,
    EXECUTOR_CONCURRENCY: String(slots),
  });
  for (;;) {
    const { success, failed, aborted } = runtime.metrics.completed;
    const done = success + failed + aborted;
    if (done >= n) break;
    await new Promise((r) => setTimeout(r, 20)); // coarse: polling must not steal the loop it measures
  }
  const elapsed = performance.now() - started;
  await runtime.shutdown();
  return elapsed;
}

async function goLoop(server: ColoniesServer, n: number): Promise<number | null> {
  let bin: string;
  try {
    bin = execFileSync("bash", ["bench/go-executor/build.sh"], { encoding: "utf8" }).trim();
  } catch {
    return null;
  }
  const type = uniqueName("go");
  await submitMany(server, type, "0", n);
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(bin, [], {
      env: {
        ...server.env,
        COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
        COLONIES_EXECUTOR_NAME: uniqueName("go"),
        COLONIES_EXECUTOR_TYPE: type,
        BENCH_COUNT: String(n),
      },
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(out))));
  });
  return Number(/elapsed_ms (\d+)/.exec(output)?.[1]);
}

async function idleRss(server: ColoniesServer): Promise<number> {
  // Started the way the bin's shebang and the image's entry point start it.
  const child = spawn(process.execPath, ["--max-semi-space-size=1", "dist/src/cli.js", "sleep"], {
    env: {
      ...server.env,
      PATH: process.env.PATH ?? "",
      COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
      COLONIES_EXECUTOR_NAME: uniqueName("idle"),
      EXECUTOR_LOG_FORMAT: "json",
    },
    stdio: "ignore",
  });
  await new Promise((r) => setTimeout(r, 5000));
  const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024;
}

const row = (label: string, ms: number, n: number) =>
  console.log(
    `${label.padEnd(44)} ${ms.toFixed(0).padStart(7)} ms  ${((n / ms) * 1000).toFixed(0).padStart(6)} proc/s`,
  );

const server = await startColoniesServer();
try {
  console.log(`Colonies server ${server.port}; ${COUNT} processes per run\n`);
  await bareLoop(server, 20); // warm-up
  const bare = await bareLoop(server, COUNT);
  const oneSlot = await runtimeLoop(server, COUNT, "0", 1);
  const go = await goLoop(server, COUNT);
  const sleepN = Math.max(40, Math.round(COUNT / 2.5));
  const one50 = await runtimeLoop(server, sleepN, "50", 1);
  const eight50 = await runtimeLoop(server, sleepN, "50", 8);
  const rss = await idleRss(server);

  row("(a) bare client assign+close", bare, COUNT);
  row("(b) executor runtime, sleep(0), 1 slot", oneSlot, COUNT);
  if (go !== null) row("(d) Go SDK executor, sleep(0), 1 slot", go, COUNT);
  row(`(c) executor, sleep(50) x${sleepN}, 1 slot`, one50, sleepN);
  row(`(c) executor, sleep(50) x${sleepN}, 8 slots`, eight50, sleepN);
  console.log("");
  console.log(`overhead per process vs bare round trip: ${(oneSlot / bare).toFixed(2)}x   (target <= 1.2x)`);
  console.log(`8 slots vs 1 slot speed-up:              ${(one50 / eight50).toFixed(2)}x   (target >= 6x)`);
  if (go !== null) {
    console.log(`throughput vs Go SDK executor:           ${(go / oneSlot).toFixed(2)}x   (target >= 0.9x)`);
  } else console.log("Go SDK executor: not built (bash bench/go-executor/build.sh)");
  console.log(`idle executor RSS:                       ${rss.toFixed(0)} MB  (target < 80 MB)`);
} finally {
  await server.stop();
}

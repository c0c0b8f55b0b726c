/** Helpers to run executors in-process against a real Colonies server and to submit and await processes. */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { ColoniesClient } from "../src/colonies/client.js";
import { type Process, ProcessState } from "../src/colonies/types.js";
import { loadRuntimeConfig } from "../src/executor/config.js";
import { createLogger } from "../src/executor/logger.js";
import { ExecutorRuntime } from "../src/executor/runtime.js";
import type { ExecutorModule } from "../src/executor/types.js";
import { LocalPodRunner } from "../src/local/pod-runner.js";
import type { ColoniesServer } from "./colonies-server.js";

export const testLogger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? "warn", pretty: false });

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

export async function startRuntime(
  server: ColoniesServer,
  module: ExecutorModule,
  env: Record<string, string> = {},
): Promise<ExecutorRuntime> {
  const fullEnv = {
    ...server.env,
    COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
    COLONIES_EXECUTOR_NAME: uniqueName(module.kind),
    EXECUTOR_ASSIGN_TIMEOUT: "5",
    ...env,
  };
  const config = loadRuntimeConfig(fullEnv, module.kind);
  const instance = await module.create(fullEnv, testLogger, {
    colonyName: config.colonyName,
    executorPrvKey: config.executorPrvKey,
    locationName: config.locationName,
  });
  const runtime = new ExecutorRuntime(config, instance, testLogger);
  await runtime.start();
  return runtime;
}

export function userClient(server: ColoniesServer): ColoniesClient {
  return new ColoniesClient({ host: server.host, port: server.port, tls: false });
}

/** A process's own Colonies log as one text (an engine failure's whole output is there). */
export async function processLog(server: ColoniesServer, processId: string): Promise<string> {
  const logs = await userClient(server).getLogs(
    { colonyName: server.colonyName, processId, count: 500 },
    server.userPrvKey,
  );
  return logs.map((l) => l.message).join("");
}

export async function submit(
  server: ColoniesServer,
  executorType: string,
  funcname: string,
  args: unknown[] = [],
  kwargs: Record<string, unknown> = {},
): Promise<Process> {
  return userClient(server).submit(
    {
      funcname,
      args,
      kwargs,
      maxexectime: -1,
      maxretries: 0,
      maxwaittime: -1,
      conditions: { colonyname: server.colonyName, executortype: executorType },
    },
    server.userPrvKey,
  );
}

/**
 * Waits until a process is closed or failed and returns it. The server (1.9.12) marks a process FAILED and
 * stores its errors in two separate statements, so a FAILED process without errors yet is read again.
 */
export async function waitDone(
  server: ColoniesServer,
  processId: string,
  timeoutMs = 60_000,
): Promise<Process> {
  const client = userClient(server);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const process = await client.getProcess(processId, server.userPrvKey);
    if (process.state === ProcessState.SUCCESS) return process;
    if (process.state === ProcessState.FAILED && (process.errors?.length ?? 0) > 0) return process;
    if (Date.now() > deadline) throw new Error(`process ${processId} still in state ${process.state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The built entry point `colonyos-executor` (dist/src/cli.js), for running executors as their own processes
 * (e.g. the containers the local pod runner starts); an error saying how to build it when it is missing.
 */
export function builtCli(): string {
  const cli = resolve("dist/src/cli.js");
  if (!existsSync(cli))
    throw new Error(`${cli} is missing: run \`npm run build\` first (scripts/test.sh does)`);
  return cli;
}

/**
 * The local pod runner for a namespace whose deployments run this project's image: each container runs the built
 * entry point with the pod's environment, its /metrics port chosen at random (pods share one host here) and JSON
 * logs. Started; stop it when done.
 */
export async function startExecutorPodRunner(
  kubeConfig: KubeConfig,
  namespace: string,
): Promise<LocalPodRunner> {
  const cli = builtCli();
  const runner = new LocalPodRunner({
    kubeConfig,
    namespace,
    logger: testLogger,
    gracePeriodMs: 5_000,
    command: (container) => ({
      command: "env",
      args: [
        "EXECUTOR_HTTP_PORT=0",
        "EXECUTOR_LOG_FORMAT=json",
        process.execPath,
        cli,
        ...(container.args ?? []),
      ],
    }),
  });
  await runner.start();
  return runner;
}

/**
 * Runtime configuration, read once from the environment with Colonies' own variable names and validated at
 * start-up. Raw env → defaults → typed config; every problem is reported at once, by variable name.
 */
import { hostname } from "node:os";
import { generatePrivateKey } from "../colonies/crypto.js";
import { EnvReader } from "./env.js";
import type { EnvDoc } from "./types.js";

export interface RuntimeConfig {
  server: { host: string; port: number; tls: boolean };
  colonyName: string;
  /** Colony owner key: present → self-registering executor (add, approve, remove on shutdown). */
  colonyPrvKey?: string;
  /** Executor key: generated when self-registering without one. */
  executorPrvKey: string;
  executorName: string;
  executorType: string;
  concurrency: number;
  assignTimeoutSeconds: number;
  /** Longest silence towards the server while every slot is busy; 0 disables the heartbeat. */
  heartbeatMs: number;
  shutdownGraceMs: number;
  http: { host: string; port: number } | null;
  log: { level: string; pretty: boolean };
  /** Location shown by `colonies executor ls`. */
  locationName: string;
}

export const RUNTIME_ENV: readonly EnvDoc[] = [
  { name: "COLONIES_SERVER_HOST", description: "Colonies server host name or address", default: "localhost" },
  { name: "COLONIES_SERVER_PORT", description: "Colonies server port", default: "50080" },
  { name: "COLONIES_TLS", description: "use HTTPS (true|false)", default: "false" },
  { name: "COLONIES_COLONY_NAME", description: "colony to serve (required)" },
  {
    name: "COLONIES_COLONY_PRVKEY",
    description: "colony owner key; when set the executor registers, approves and removes itself",
    secret: true,
  },
  {
    name: "COLONIES_PRVKEY",
    description: "executor private key (required without COLONIES_COLONY_PRVKEY; generated otherwise)",
    secret: true,
  },
  {
    name: "COLONIES_EXECUTOR_NAME",
    description: "executor name, unique in the colony",
    default: "<type>-<host>",
  },
  { name: "COLONIES_EXECUTOR_TYPE", description: "executor type that processes target", default: "<kind>" },
  {
    name: "EXECUTOR_CONCURRENCY",
    description:
      "processes run at once (one waiting on other calls, e.g. for its turn on a name, does not count)",
    default: "1",
  },
  { name: "EXECUTOR_ASSIGN_TIMEOUT", description: "long-poll seconds per assign request", default: "60" },
  {
    name: "EXECUTOR_HEARTBEAT",
    description:
      "seconds between keep-alive calls while every slot is busy (the server removes executors silent for COLONIES_STALE_EXECUTOR_DURATION); 0 disables",
    default: "60",
  },
  {
    name: "EXECUTOR_SHUTDOWN_GRACE",
    description: "seconds running processes get to finish on SIGTERM before they are aborted and failed",
    default: "30",
  },
  {
    name: "EXECUTOR_HTTP_PORT",
    description: "port of /healthz, /readyz and /metrics; empty disables",
    default: "",
  },
  { name: "EXECUTOR_HTTP_HOST", description: "address the HTTP endpoints bind to", default: "0.0.0.0" },
  { name: "EXECUTOR_LOG_LEVEL", description: "trace|debug|info|warn|error", default: "info" },
  { name: "EXECUTOR_LOG_FORMAT", description: "json|pretty", default: "pretty on a terminal, else json" },
  {
    name: "EXECUTOR_LOCATION",
    description:
      "location the executor registers at (shown by `colonies executor ls`); a k8s executor reconciles the blueprints of this location (empty: every location)",
    default: "",
  },
];

const NAME = {
  pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
  expected: "1-128 letters, digits, '.', '_' or '-'",
};
const KEY = { pattern: /^[0-9a-f]{64}$/, expected: "64 lowercase hex characters (a secp256k1 private key)" };
const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export function loadRuntimeConfig(env: NodeJS.ProcessEnv, kind: string): RuntimeConfig {
  const e = new EnvReader(env);
  const host = e.string("COLONIES_SERVER_HOST") ?? "localhost";
  const port = e.int("COLONIES_SERVER_PORT", 1, 65535) ?? 50080;
  const tls = e.bool("COLONIES_TLS") ?? false;
  const colonyName = e.required("COLONIES_COLONY_NAME", NAME);
  const colonyPrvKey = e.string("COLONIES_COLONY_PRVKEY", KEY);
  const executorPrvKey = e.string("COLONIES_PRVKEY", KEY);
  const executorName = e.string("COLONIES_EXECUTOR_NAME", NAME);
  const executorType = e.string("COLONIES_EXECUTOR_TYPE", NAME) ?? kind;
  const concurrency = e.int("EXECUTOR_CONCURRENCY", 1, 1024) ?? 1;
  const assignTimeoutSeconds = e.int("EXECUTOR_ASSIGN_TIMEOUT", 1, 240) ?? 60;
  const heartbeatSeconds = e.int("EXECUTOR_HEARTBEAT", 0, 3600) ?? 60;
  const graceSeconds = e.int("EXECUTOR_SHUTDOWN_GRACE", 0, 86_400) ?? 30;
  const httpPort = e.int("EXECUTOR_HTTP_PORT", 0, 65535);
  const httpHost = e.string("EXECUTOR_HTTP_HOST") ?? "0.0.0.0";
  const level = e.oneOf("EXECUTOR_LOG_LEVEL", LEVELS) ?? "info";
  const format = e.oneOf("EXECUTOR_LOG_FORMAT", ["json", "pretty"] as const);
  if (!e.raw("COLONIES_COLONY_PRVKEY") && !e.raw("COLONIES_PRVKEY")) {
    e.problems.push(
      "set COLONIES_PRVKEY (a pre-registered executor's key) or COLONIES_COLONY_PRVKEY (to self-register)",
    );
  }
  e.check("configuration");
  return {
    server: { host, port, tls },
    colonyName,
    colonyPrvKey,
    executorPrvKey: executorPrvKey ?? generatePrivateKey(),
    executorName: executorName ?? `${executorType}-${hostname().replace(/[^A-Za-z0-9._-]/g, "-")}`,
    executorType,
    concurrency,
    assignTimeoutSeconds,
    heartbeatMs: heartbeatSeconds * 1000,
    shutdownGraceMs: graceSeconds * 1000,
    http: httpPort === undefined ? null : { host: httpHost, port: httpPort },
    log: { level, pretty: (format ?? (process.stderr.isTTY ? "pretty" : "json")) === "pretty" },
    locationName: e.string("EXECUTOR_LOCATION") ?? "",
  };
}

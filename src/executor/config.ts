/**
 * Runtime configuration, read once from the environment with Colonies' own variable names and validated at
 * start-up. Raw env → defaults → typed config; every problem is reported at once, by variable name.
 */
import { hostname } from "node:os";
import { z } from "zod";
import { generatePrivateKey, isPrivateKey } from "../colonies/crypto.js";
import { ConfigError, type EnvDoc } from "./types.js";

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
  { name: "EXECUTOR_CONCURRENCY", description: "processes run at once", default: "1" },
  { name: "EXECUTOR_ASSIGN_TIMEOUT", description: "long-poll seconds per assign request", default: "60" },
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
];

const bool = (name: string) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => v === "true" || v === "false", `${name} must be "true" or "false"`)
    .transform((v) => v === "true");

const int = (name: string, min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `${name} must be a whole number`)
    .transform(Number)
    .refine((v) => v >= min && v <= max, `${name} must be between ${min} and ${max}`);

const key = (name: string) =>
  z
    .string()
    .trim()
    .refine(isPrivateKey, `${name} must be 64 lowercase hex characters (a secp256k1 private key)`);

const name = (what: string) =>
  z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, `${what} must be 1-128 letters, digits, '.', '_' or '-'`);

const schema = z.object({
  COLONIES_SERVER_HOST: z.string().trim().min(1).default("localhost"),
  COLONIES_SERVER_PORT: int("COLONIES_SERVER_PORT", 1, 65535).default(50080),
  COLONIES_TLS: bool("COLONIES_TLS").default(false),
  COLONIES_COLONY_NAME: name("COLONIES_COLONY_NAME"),
  COLONIES_COLONY_PRVKEY: key("COLONIES_COLONY_PRVKEY").optional(),
  COLONIES_PRVKEY: key("COLONIES_PRVKEY").optional(),
  COLONIES_EXECUTOR_NAME: name("COLONIES_EXECUTOR_NAME").optional(),
  COLONIES_EXECUTOR_TYPE: name("COLONIES_EXECUTOR_TYPE").optional(),
  EXECUTOR_CONCURRENCY: int("EXECUTOR_CONCURRENCY", 1, 1024).default(1),
  EXECUTOR_ASSIGN_TIMEOUT: int("EXECUTOR_ASSIGN_TIMEOUT", 1, 240).default(60),
  EXECUTOR_SHUTDOWN_GRACE: int("EXECUTOR_SHUTDOWN_GRACE", 0, 86_400).default(30),
  EXECUTOR_HTTP_PORT: int("EXECUTOR_HTTP_PORT", 0, 65535).optional(),
  EXECUTOR_HTTP_HOST: z.string().trim().min(1).default("0.0.0.0"),
  EXECUTOR_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  EXECUTOR_LOG_FORMAT: z.enum(["json", "pretty"]).optional(),
  EXECUTOR_LOCATION: z.string().trim().default(""),
});

/** Empty strings count as unset, as in a shell. */
function present(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== "",
    ),
  );
}

export function loadRuntimeConfig(env: NodeJS.ProcessEnv, kind: string): RuntimeConfig {
  const parsed = schema.safeParse(present(env));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) =>
      issue.code === "invalid_type" ? `${issue.path.join(".")} is required` : issue.message,
    );
    throw new ConfigError(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
  const e = parsed.data;
  if (!e.COLONIES_COLONY_PRVKEY && !e.COLONIES_PRVKEY) {
    throw new ConfigError(
      "invalid configuration:\n  - set COLONIES_PRVKEY (a pre-registered executor's key) or COLONIES_COLONY_PRVKEY (to self-register)",
    );
  }
  const executorType = e.COLONIES_EXECUTOR_TYPE ?? kind;
  return {
    server: { host: e.COLONIES_SERVER_HOST, port: e.COLONIES_SERVER_PORT, tls: e.COLONIES_TLS },
    colonyName: e.COLONIES_COLONY_NAME,
    colonyPrvKey: e.COLONIES_COLONY_PRVKEY,
    executorPrvKey: e.COLONIES_PRVKEY ?? generatePrivateKey(),
    executorName:
      e.COLONIES_EXECUTOR_NAME ?? `${executorType}-${hostname().replace(/[^A-Za-z0-9._-]/g, "-")}`,
    executorType,
    concurrency: e.EXECUTOR_CONCURRENCY,
    assignTimeoutSeconds: e.EXECUTOR_ASSIGN_TIMEOUT,
    shutdownGraceMs: e.EXECUTOR_SHUTDOWN_GRACE * 1000,
    http:
      e.EXECUTOR_HTTP_PORT === undefined ? null : { host: e.EXECUTOR_HTTP_HOST, port: e.EXECUTOR_HTTP_PORT },
    log: {
      level: e.EXECUTOR_LOG_LEVEL,
      pretty: (e.EXECUTOR_LOG_FORMAT ?? (process.stderr.isTTY ? "pretty" : "json")) === "pretty",
    },
    locationName: e.EXECUTOR_LOCATION,
  };
}

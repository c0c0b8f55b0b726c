/**
 * Terminology
 * - executor: a long-running worker registered with a Colonies server under a type (e.g. `sleep`).
 * - function: a named operation an executor offers (`sleep`, `deploy`, ...), registered so that
 *   `colonies function ls` documents it.
 * - process: one call of a function, submitted to Colonies, assigned to exactly one executor, which then
 *   closes it (success, with `out`) or fails it (with `errors`) exactly once.
 * - deployment: (k8s executor) a Kubernetes Deployment of executor pods, owned by one Pulumi stack.
 * - atom: anything that runs an executor (a pod, a local process), see src/atoms.
 */
import type { Logger } from "pino";

/** Types the argument parser coerces to; the official CLI sends every argument as a string. */
export type ArgType = "string" | "int" | "bool";

export interface ArgSpec {
  name: string;
  type: ArgType;
  description: string;
  /** Positional arguments are required unless marked optional; kwargs-only extras are always optional. */
  optional?: boolean;
  /** Inclusive bounds for ints. */
  min?: number;
  max?: number;
  /** Allowed values for strings. */
  enum?: readonly string[];
  /**
   * Further rules of a string argument (a name, an image, a quantity...): returns what is wrong with the value,
   * as a phrase completing "<fn>: ", or undefined when it is fine. Declared here so that handlers get values
   * that were checked before they run, and `colonies function ls` describes the rule.
   */
  check?: (value: string) => string | undefined;
  /**
   * A string argument whose text carries structure (items, pairs): parsed once, before the handler runs, into
   * the value the handler gets, or refused with what is wrong (a phrase completing "<fn>: "). Instead of check.
   */
  parse?: (value: string) => { value: object } | { problem: string };
}

/** A coerced argument: a string, number or boolean, or what a `parse` made of a string. */
export type ArgValue = string | number | boolean | object;
export type ParsedArgs = Record<string, ArgValue | undefined>;

/** What a handler gets besides its arguments: one object, per the style guide. */
export interface ProcessContext {
  processId: string;
  funcName: string;
  /**
   * The process's place in the order calls reached the Colonies server: its submission time in nanoseconds since
   * the epoch, which no caller chooses (unlike its priority). Undefined for the executor's own operations.
   */
  order?: number;
  /** Aborted on shutdown (after the grace period) or when the executor is forced to stop. */
  signal: AbortSignal;
  /** Logger scoped to this process (structured, secrets redacted). */
  logger: Logger;
  /** Appends a line to the Colonies process log (`addlogmsg`); never throws. */
  log(message: string): Promise<void>;
  /**
   * Awaits what only other calls can bring about (the turn on a name behind a call Colonies still queues). While
   * it lasts, this process does not count against EXECUTOR_CONCURRENCY, so that the executor goes on taking
   * calls, one of which may be the one it waits for; the executor's own operations have none.
   */
  waiting?<T>(blocked: Promise<T>): Promise<T>;
}

export interface FunctionDef {
  name: string;
  description: string;
  /** Positional signature, in order (the seed's signature). */
  args: readonly ArgSpec[];
  /** Optional extras accepted only by name (kwargs), e.g. `dryrun`. */
  kwargs?: readonly ArgSpec[];
  /** Returns the process output (`out`), an array of JSON values. Throwing fails the process. */
  handler(args: ParsedArgs, ctx: ProcessContext): Promise<unknown[]>;
}

/** A running executor's table of functions plus its optional lifecycle hooks. */
export interface ExecutorInstance {
  functions: readonly FunctionDef[];
  /** Readiness beyond the Colonies connection (e.g. the cluster is reachable). */
  ready?(): Promise<boolean>;
  /**
   * What a running handler does once Colonies re-queued its process (its maxexectime ran out) and another
   * executor may run it: "stop" (default: aborted, nothing reported, the work is not done twice) or "finish"
   * (it completes; its report is refused) for executors whose running handler holds a place others depend on.
   */
  onReassigned?: "stop" | "finish";
  /** Adds the executor's own metrics to the exported registry (called once, when /metrics is on). */
  registerMetrics?(prom: typeof import("prom-client"), registry: import("prom-client").Registry): void;
  close?(): Promise<void>;
}

export interface EnvDoc {
  name: string;
  description: string;
  default?: string;
  secret?: boolean;
}

/** One per executor kind (`src/executors/<kind>.ts`). */
export interface ExecutorModule {
  /** Default executor type and the name used on the command line. */
  kind: string;
  description: string;
  /** Environment variables specific to this executor, for --help. */
  env: readonly EnvDoc[];
  /** Validates its configuration (throwing ConfigError with a clear message) and builds the instance. */
  create(env: NodeJS.ProcessEnv, logger: Logger, runtime?: RuntimeIdentity): Promise<ExecutorInstance>;
}

/** Who the runtime serving the instance is in Colonies (an executor may read its colony's processes). */
export interface RuntimeIdentity {
  colonyName: string;
  executorPrvKey: string;
  /** The location it registers at (EXECUTOR_LOCATION): a k8s executor reconciles the blueprints there. */
  locationName?: string;
  /**
   * Stops the executor as a first SIGTERM would, and makes it exit non-zero: for a failure it cannot keep serving
   * through (e.g. a k8s-executor replica that lost its Lease), so that its supervisor restarts it.
   */
  fatal?(reason: string): void;
  /**
   * Its executor name (the registered one once registered, the configured one before) and whether it registered
   * itself with the colony owner key: what a k8s-executor replica records for others to remove once it is gone.
   */
  executor?(): { name: string; selfRegistered: boolean };
}

/**
 * A failure whose message is meant for the caller, as is (the process fails with it). `details` (e.g. an
 * engine's whole output) go to the process log instead, where long text belongs.
 */
export class ProcessError extends Error {
  override name = "ProcessError";
  constructor(
    message: string,
    readonly details?: string,
  ) {
    super(message);
  }
}

/** Invalid configuration found at start-up. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

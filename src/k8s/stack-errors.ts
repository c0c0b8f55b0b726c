/** What can go wrong with a stack operation, as types the k8s executor's error boundary maps to messages. */

/** The stack does not exist (never deployed, or undeployed). */
export class UnknownStackError extends Error {
  override readonly name = "UnknownStackError";
  constructor(readonly stackName: string) {
    super(`unknown deployment: ${stackName}`);
  }
}

/** Another update holds the stack's lock and its holder is not known to be gone. */
export class StackLockedError extends Error {
  override readonly name = "StackLockedError";
  constructor(readonly stackName: string) {
    super(`stack ${stackName} is locked by a running update elsewhere; try again later`);
  }
}

/** The operation ran past its hard deadline and was cancelled (the engine stopped cleanly, no lock left). */
export class DeadlineError extends Error {
  override readonly name = "DeadlineError";
  constructor(
    readonly stackName: string,
    readonly seconds: number,
  ) {
    super(`the Pulumi operation on ${stackName} took longer than ${seconds} s and was cancelled`);
  }
}

/** A Pulumi engine failure: `message` is its first meaningful line, `output` the engine's whole text. */
export class EngineError extends Error {
  override readonly name = "EngineError";
  constructor(
    message: string,
    readonly output: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * How the CLI reports a read or write the state backend's storage refused or lost (the lock, a checkpoint, the
 * history): the S3 SDK's operation errors, and gocloud's blob errors (file, Google Cloud Storage, Azure Blob).
 */
const STORAGE_FAILURE = /operation error S3: |\bblob \(key "/;

/** Whether a CLI failure is one of the state backend's storage (see STORAGE_FAILURE). */
export function isStorageFailure(error: unknown): error is Error {
  return error instanceof Error && STORAGE_FAILURE.test(error.message);
}

const MEANINGFUL = /error|fail|denied|forbidden|invalid|timed out|refused|exceeded/i;

/** Lines that only say that something failed, not what: the CLI's exit, the engine's summaries. */
const WRAPPER =
  /^(stderr: |code: |stdout: |err\?: )|Command failed with exit code|\*\*failed\*\*|^error: (update failed|preview failed|\d+ errors? occurred:?)$/;

/**
 * What went wrong, in one line: the first item of the engine's Diagnostics (a resource's own error, e.g. the
 * Kubernetes API's answer), else the first line that says what went wrong (not a stack frame nor a wrapper),
 * else the first non-empty line.
 */
export function meaningfulLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim());
  const diagnostics = lines.indexOf("Diagnostics:");
  const item = diagnostics >= 0 ? lines.slice(diagnostics).find((l) => l.startsWith("* ")) : undefined;
  if (item) return item.slice(2);
  return (
    lines.find((l) => MEANINGFUL.test(l) && !l.startsWith("at ") && !WRAPPER.test(l)) ??
    lines.find((l) => MEANINGFUL.test(l) && !l.startsWith("at ")) ??
    lines.find((l) => l !== "") ??
    text
  );
}

/** The operation that superseded another one on the same name. */
export interface Superseder {
  /** Its Colonies process (empty for the executor's own operations: the autoscaler, the drift check). */
  process: string;
  fn: string;
  /** Its place in the name's order (nanoseconds since the epoch: the Colonies server's submission time). */
  order: number;
}

/**
 * A deploy, scale, undeploy or reconcile that a later desired state on the same name made pointless: that one
 * was applied (by any replica) either before this one arrived, or while this one waited for its outcome
 * (conditional coalescing: a waiting call is never closed as superseded by one that then fails).
 */
export class SupersededError extends Error {
  override readonly name = "SupersededError";
  constructor(
    readonly stackName: string,
    readonly by: Superseder,
    readonly how: "applied" | "waited",
  ) {
    const who = by.process ? `${by.fn} ${by.process}` : `${by.fn} (this executor's own operation)`;
    super(
      `${stackName}: superseded by ${who}, later in the name's order and ${how === "applied" ? "already applied when this call arrived" : "applied while this call waited for its outcome"}`,
    );
  }
}

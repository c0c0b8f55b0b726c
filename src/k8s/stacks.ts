/**
 * The Automation API layer: one Pulumi stack per deployment name, in one project, on one state backend.
 * - one PulumiCommand, found once and reused (no `pulumi version` per workspace);
 * - a work directory per stack under the data dir (stack settings and the passphrase salt live there);
 * - operations on one stack run one at a time in Colonies priority order; different stacks concurrently up to a
 *   limit;
 * - stale locks are removed at start-up and when an update meets one (ConcurrentUpdateError);
 * - the engine's output is streamed to the caller; an AbortSignal cancels an update cleanly (SIGINT to pulumi).
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  ConcurrentUpdateError,
  LocalWorkspace,
  PulumiCommand,
  type PulumiFn,
  type Stack,
  StackNotFoundError,
} from "@pulumi/pulumi/automation/index.js";
import type { Logger } from "pino";
import { ProcessError } from "../executor/types.js";
import { removeStaleLocks } from "./locks.js";
import { KeyedQueue } from "./queue.js";

export interface StackManagerOptions {
  project: string;
  backendUrl: string;
  passphrase: string;
  dataDir: string;
  maxConcurrent: number;
  /** Directory holding bin/pulumi; PATH when absent. */
  pulumiRoot?: string;
  /** Environment for the pulumi CLI and its plugins (KUBECONFIG, PULUMI_HOME, ...). */
  env: Record<string, string>;
  logger: Logger;
}

export interface OperationOptions {
  signal?: AbortSignal;
  /** Position among the operations waiting on the same stack (Colonies' priority time). */
  order?: number;
  /** Engine output, line by line. */
  onOutput?: (line: string) => void;
}

export interface ChangeSummary {
  [op: string]: number;
}

/** Stack outputs are plain JSON values here. */
export type Outputs = Record<string, unknown>;

export type UpOptions = OperationOptions & { dryrun?: boolean; refresh?: boolean };
export interface UpResult {
  changes: ChangeSummary;
  outputs: Outputs;
}

const NOISE = /^\s*$/;
/** How long an idle stack waits for simultaneous arrivals, so that they run in submission order. */
const GATHER_MS = 100;

export class StackManager {
  private readonly queue: KeyedQueue;
  private readonly selected = new Map<string, Stack>();
  /** Outputs of each stack's last update by this process, to spare a CLI call on scale. */
  private readonly lastOutputs = new Map<string, Outputs>();
  /** Stacks whose lock holder died: their state may hold pending operations, cleared by a refresh first. */
  private readonly interrupted = new Set<string>();

  private constructor(
    private readonly options: StackManagerOptions,
    private readonly command: PulumiCommand,
  ) {
    this.queue = new KeyedQueue(options.maxConcurrent, GATHER_MS);
  }

  static async create(options: StackManagerOptions): Promise<StackManager> {
    const command = await PulumiCommand.get({
      root: options.pulumiRoot,
      skipVersionCheck: options.env.PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK === "true",
    });
    if (options.backendUrl.startsWith("file://")) {
      await mkdir(new URL(options.backendUrl), { recursive: true });
    }
    const manager = new StackManager(options, command);
    const removed = await removeStaleLocks(options.backendUrl, options.project, { singleWriter: true });
    for (const lock of removed) {
      manager.interrupted.add(lock.stack);
      options.logger.warn(
        { stack: lock.stack, pid: lock.pid, host: lock.host },
        "removed a stale Pulumi lock",
      );
    }
    return manager;
  }

  get pulumiVersion(): string {
    return this.command.version?.toString() ?? "unknown";
  }

  private async workspaceOptions(stackName: string) {
    const workDir = join(this.options.dataDir, "stacks", stackName);
    await mkdir(workDir, { recursive: true });
    return {
      workDir,
      pulumiCommand: this.command,
      secretsProvider: "passphrase",
      projectSettings: {
        name: this.options.project,
        runtime: "nodejs" as const,
        backend: { url: this.options.backendUrl },
      },
      envVars: {
        ...this.options.env,
        PULUMI_CONFIG_PASSPHRASE: this.options.passphrase,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      },
    };
  }

  /**
   * The stack, selected once and then reused with the operation's program: selecting runs the CLI, which
   * costs a few hundred milliseconds per operation. Called only from inside the stack's queue.
   */
  private async stack(stackName: string, program: PulumiFn, create: boolean): Promise<Stack> {
    let stack = this.selected.get(stackName);
    if (!stack) {
      const args = { projectName: this.options.project, stackName, program };
      const opts = await this.workspaceOptions(stackName);
      stack = await (create
        ? LocalWorkspace.createOrSelectStack(args, opts)
        : LocalWorkspace.selectStack(args, opts));
      this.selected.set(stackName, stack);
    }
    (stack.workspace as LocalWorkspace).program = program;
    return stack;
  }

  /** Runs one operation on a stack, queued behind the others on that stack. */
  private run<T>(stackName: string, operation: () => Promise<T>, order?: number): Promise<T> {
    return this.queue.run(stackName, operation, order);
  }

  /** Retries once after removing stale locks when the stack is locked by a dead holder. */
  private async withLockRecovery<T>(stackName: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (!(error instanceof ConcurrentUpdateError)) throw error;
      const removed = await removeStaleLocks(this.options.backendUrl, this.options.project, {
        stack: stackName,
        singleWriter: true,
      });
      if (removed.length === 0) {
        throw new ProcessError(`stack ${stackName} is locked by a running update elsewhere; try again later`);
      }
      this.interrupted.add(stackName);
      this.options.logger.warn({ stack: stackName }, "removed a stale Pulumi lock; retrying");
      return operation();
    }
  }

  /** `pulumi up` (or a preview when dryrun) of a stack, created if needed. */
  up(stackName: string, program: PulumiFn, options: UpOptions): Promise<UpResult> {
    return this.run(
      stackName,
      async () => this.apply(stackName, await this.stack(stackName, program, true), options),
      options.order,
    );
  }

  /**
   * Updates an existing stack with a program made from its current outputs, in one turn of the stack's queue
   * (e.g. scale: the recorded spec with a new number of pods). Unknown stacks fail with "unknown deployment".
   */
  update(
    stackName: string,
    programFor: (outputs: Outputs) => PulumiFn,
    options: UpOptions,
  ): Promise<UpResult> {
    return this.run(
      stackName,
      async () => {
        let outputs = this.lastOutputs.get(stackName);
        if (!outputs) {
          const stack = await this.selectExisting(stackName, async () => ({}));
          outputs = plainOutputs(await stack.outputs());
        }
        return this.apply(stackName, await this.stack(stackName, programFor(outputs), false), options);
      },
      options.order,
    );
  }

  private async apply(stackName: string, stack: Stack, options: UpOptions): Promise<UpResult> {
    const streamed = lineSplitter(options.onOutput);
    const common = { onOutput: streamed, signal: options.signal, color: "never" as const };
    if (options.dryrun) {
      const preview = await stack.preview({ ...common, refresh: options.refresh });
      streamed.flush();
      return { changes: preview.changeSummary, outputs: {} };
    }
    const result = await this.withLockRecovery(stackName, async () => {
      if (this.interrupted.has(stackName)) {
        // An update was cut off (the executor was killed): reconcile the state with the cluster and drop
        // creates that never finished, so that this update converges.
        await stack.refresh({ ...common, clearPendingCreates: true });
        this.interrupted.delete(stackName);
      }
      return stack.up({ ...common, refresh: options.refresh });
    });
    streamed.flush();
    const outputs = plainOutputs(result.outputs);
    this.lastOutputs.set(stackName, outputs);
    return { changes: (result.summary.resourceChanges ?? {}) as ChangeSummary, outputs };
  }

  /**
   * Destroys the stack's resources and removes the stack. With dryrun, previews an empty program instead: its
   * change summary is exactly what destroy would delete.
   */
  destroy(
    stackName: string,
    options: OperationOptions & { dryrun?: boolean },
  ): Promise<{ changes: ChangeSummary }> {
    return this.run(
      stackName,
      async () => {
        const stack = await this.selectExisting(stackName, async () => ({}));
        const streamed = lineSplitter(options.onOutput);
        const common = { onOutput: streamed, signal: options.signal, color: "never" as const };
        if (options.dryrun) {
          const preview = await stack.preview(common);
          streamed.flush();
          return { changes: preview.changeSummary };
        }
        const result = await this.withLockRecovery(stackName, () =>
          stack.destroy({ ...common, remove: true }),
        );
        this.selected.delete(stackName);
        this.lastOutputs.delete(stackName);
        streamed.flush();
        return { changes: (result.summary?.resourceChanges ?? {}) as ChangeSummary };
      },
      options.order,
    );
  }

  private async selectExisting(stackName: string, program: PulumiFn): Promise<Stack> {
    try {
      return await this.stack(stackName, program, false);
    } catch (error) {
      if (error instanceof StackNotFoundError || /no stack named|not found/i.test(String(error))) {
        throw new ProcessError(`unknown deployment: ${stackName}`);
      }
      throw error;
    }
  }
}

function plainOutputs(outputs: Record<string, { value: unknown; secret: boolean }>): Outputs {
  return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.secret ? "[secret]" : v.value]));
}

/** Turns the engine's output chunks into whole, non-empty lines. */
function lineSplitter(onLine?: (line: string) => void): ((chunk: string) => void) & { flush(): void } {
  let partial = "";
  const feed = (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (!NOISE.test(line)) onLine?.(line.trimEnd());
  };
  return Object.assign(feed, {
    flush() {
      if (!NOISE.test(partial)) onLine?.(partial.trimEnd());
      partial = "";
    },
  });
}

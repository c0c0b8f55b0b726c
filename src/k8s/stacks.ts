/**
 * The Automation API layer: one Pulumi stack per deployment name, in one project, on one state backend.
 * - one PulumiCommand, found once and reused (no `pulumi version` per workspace);
 * - a work directory per stack under the data dir (its stack settings: the passphrase's salt, or the key manager's
 *   URL and encrypted data key; the state records them too);
 * - operations on one stack run one at a time in the Colonies server's submission order (a session: read the
 *   current outputs, then update, preview or destroy, in one turn); different stacks concurrently up to a limit;
 * - a session also holds the name's turn from the coordinator (coordination.ts), so that replicas sharing the
 *   backend take turns too; a mutation older than the one last applied to the name (applied before it arrived,
 *   or while it waited behind a later one that supersedes it) is superseded (SupersededError) instead of run;
 * - cached stacks and outputs are reused only while the name's version is the one this process last saw;
 * - every operation has a hard deadline, after which it is cancelled cleanly (SIGINT to pulumi: no lock left) and
 *   its caller gets a DeadlineError even if some of its work does not stop (its turn ends only when it does);
 * - a name's work directory lives only as long as its stack: a turn that ends with the stack known not to exist
 *   (a lookup of an unknown name, a destroy, a preview of a new name) removes it; `inspect` reads through a
 *   scratch directory of its own, since it takes no turn;
 * - locks left by a dead holder are removed: for a single writer at start-up and when an update meets one; with
 *   replicas, when an update meets one during the name's turn (only its holder updates the stack), and an
 *   interrupted stack is refreshed before its next update;
 * - an update is `pulumi up` and nothing else (pulumi-update.ts): its summary from the engine's events, its
 *   outputs from the program, which runs in this process; a name's stack is created (`pulumi stack init`) only
 *   when the backend or the turn says it does not exist, and no operation selects it first (every command names
 *   its stack);
 * - the engine's output is streamed to the caller. Failures are typed (stack-errors.ts).
 * One class on purpose: the queue, the selected stacks, their cached outputs and versions and the interrupted
 * set are one state that only holds together inside it.
 */
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import {
  CommandError,
  ConcurrentUpdateError,
  LocalWorkspace,
  PulumiCommand,
  type PulumiFn,
  type Stack,
  StackAlreadyExistsError,
  StackNotFoundError,
} from "@pulumi/pulumi/automation/index.js";
import type { Logger } from "pino";
import { redactText, secretValues } from "../executor/redact.js";
import {
  type NameCoordinator,
  type NameRecord,
  setsDesiredState,
  type Ticket,
  type TicketRequest,
} from "./coordination.js";
import { repairCutWrites } from "./cut-writes.js";
import { removeStaleLocks } from "./locks.js";
import { runCli, runUpdate } from "./pulumi-update.js";
import { Slots } from "./queue.js";
import { redactingFailures } from "./redacted-cli.js";
import {
  DeadlineError,
  EngineError,
  isStorageFailure,
  meaningfulLine,
  StackLockedError,
  UnknownStackError,
} from "./stack-errors.js";
import { createsTableOnOpen, openStateBackend } from "./state-backend.js";

export interface StackManagerOptions {
  project: string;
  backendUrl: string;
  /** Opens stacks whose secrets a passphrase encrypts; required when secretsProvider is "passphrase". */
  passphrase?: string;
  /**
   * What encrypts the secrets of the stacks this creates (`pulumi stack init --secrets-provider`): "passphrase", or
   * a key manager's URL, which spares every CLI process the passphrase's key derivation (PBKDF2, ~0.2 CPU-s).
   */
  secretsProvider: string;
  dataDir: string;
  maxConcurrent: number;
  /** Hard deadline of one operation (its turn on the stack), in milliseconds. */
  deadlineMs: number;
  /** Directory holding bin/pulumi; PATH when absent. */
  pulumiRoot?: string;
  /** Environment for the pulumi CLI and its plugins (KUBECONFIG, ...). */
  env: Record<string, string>;
  /** Who takes turns on a name: this process alone (single writer), or replicas sharing the backend. */
  coordinator: NameCoordinator;
  logger: Logger;
}

/** What a session does to its stack (its ticket without the order): see coordination.ts. */
export type Operation = Omit<Ticket, "order">;

export interface SessionOptions {
  signal?: AbortSignal;
  /**
   * Position among the operations on the same name: the Colonies server's submission time of the call, in
   * nanoseconds since the epoch. Without it (the executor's own operations, reads), the operation is placed after
   * everything the name already holds.
   */
  order?: number;
  /** Engine output, line by line. */
  onOutput?: (line: string) => void;
  operation?: Operation;
  /** Awaits the name's turn, which waits on other calls (ProcessContext.waiting: the caller's slot is freed). */
  waiting?<T>(blocked: Promise<T>): Promise<T>;
}

export interface ChangeSummary {
  [op: string]: number;
}

/** Stack outputs as plain JSON values, secrets included (they never leave this process unmasked). */
export type Outputs = Record<string, unknown>;

export interface UpResult {
  changes: ChangeSummary;
  outputs: Outputs;
}

/** One past operation of a stack, from its history. */
export interface UpdateRecord {
  kind: string;
  result: string;
  startTime: string;
  endTime: string | null;
  changes: ChangeSummary;
}

/** One turn on a stack: everything it does happens before the next operation on that stack starts. */
export interface StackSession {
  /**
   * Aborts when the operation must stop: the caller's signal, the operation's deadline, or the turn lost. Work in
   * the session passes it to what it waits for (Kubernetes reads, Colonies calls), so that nothing outlives it.
   */
  readonly signal: AbortSignal;
  /** The outputs of the stack's last update; undefined when the stack does not exist. */
  current(): Promise<Outputs | undefined>;
  /**
   * `pulumi up` of the program (a preview when dryrun), creating the stack if needed; `cancel` stops it cleanly
   * too (like the session's own signal). `refresh` reads the live objects into the state first, so that what
   * changed behind the stack's back (drift) is put back too.
   */
  up(
    program: PulumiFn,
    options?: { dryrun?: boolean; cancel?: AbortSignal; refresh?: boolean },
  ): Promise<UpResult>;
  /** Destroys the stack's resources and removes the stack; with dryrun, previews exactly that. */
  destroy(options?: { dryrun?: boolean; signal?: AbortSignal }): Promise<{ changes: ChangeSummary }>;
}

const NOISE = /^\s*$/;
const EMPTY_PROGRAM: PulumiFn = async () => ({});
/** How long work past its deadline gets to stop (Pulumi cancelled cleanly) before its caller is answered anyway. */
const CANCEL_GRACE_MS = 15_000;
/** The pause before an operation that the state backend's storage failed is tried once more. */
const STORAGE_RETRY_MS = 1_000;

/** A session without an operation (a read): it supersedes nothing and waits behind every mutation. */
const READ: Operation = { process: "", fn: "read", effect: "none" };

/** Scratch work directories of `inspect`, under the data dir. */
const LOOKUPS = "lookups";

/** What a turn learned about its stack: whether it attempted an update, and whether the stack exists (if known). */
interface TurnFacts {
  update: boolean;
  exists: boolean | undefined;
}

export class StackManager {
  private readonly slots: Slots;
  /** Stacks selected through the Automation API (previews, destroys, refreshes), reused with each program. */
  private readonly selected = new Map<string, Stack>();
  /** Each name's workspace (its work directory with Pulumi.yaml): commands on the name run there. */
  private readonly workspaces = new Map<string, LocalWorkspace>();
  /** Names whose stack exists, as far as this process knows at the name's cached version. */
  private readonly existing = new Set<string>();
  /** Outputs of each stack's last update by this process, to spare a CLI call per operation. */
  private readonly lastOutputs = new Map<string, Outputs>();
  /** The version of each name that the cached stack and outputs belong to. */
  private readonly versions = new Map<string, number>();
  /** Stacks whose lock holder died: their state may hold pending operations, cleared by a refresh first. */
  private readonly interrupted = new Set<string>();

  private constructor(
    private readonly options: StackManagerOptions,
    private readonly command: PulumiCommand,
    /** Masks the secrets of the state backend and its encryption in the engine's output. */
    private readonly mask: (text: string) => string,
  ) {
    this.slots = new Slots(options.maxConcurrent);
  }

  static async create(options: StackManagerOptions): Promise<StackManager> {
    const secrets = stateSecrets(options);
    const command = redactingFailures(
      await PulumiCommand.get({
        root: options.pulumiRoot,
        skipVersionCheck: options.env.PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK === "true",
      }),
      secrets,
    );
    if (options.backendUrl.startsWith("file://")) {
      await mkdir(new URL(options.backendUrl), { recursive: true });
    }
    if (createsTableOnOpen(options.backendUrl)) {
      await mkdir(options.dataDir, { recursive: true });
      await openStateBackend(command, options.dataDir, cliEnv(options), { logger: options.logger });
    }
    const manager = new StackManager(options, command, (text) => redactText(text, secrets));
    // Only a single writer may clean up at start-up: with replicas, another one may be updating right now.
    if (options.coordinator.kind !== "local") return manager;
    // It owns its data dir: scratch directories of lookups a kill cut short are leftovers.
    await rm(join(options.dataDir, LOOKUPS), { recursive: true, force: true });
    for (const lock of await removeStaleLocks(options.backendUrl, options.project, { singleWriter: true })) {
      manager.interrupted.add(lock.stack);
      options.logger.warn(
        { stack: lock.stack, pid: lock.pid, host: lock.host },
        "removed a stale Pulumi lock",
      );
    }
    // Its earlier incarnation may also have been killed in a write that held no lock (stack init).
    for (const path of await repairCutWrites(options.backendUrl, options.project)) {
      options.logger.warn(
        { path },
        "removed an empty attributes file a killed write left in the state backend",
      );
    }
    return manager;
  }

  get pulumiVersion(): string {
    return this.command.version?.toString() ?? "unknown";
  }

  /**
   * Runs `work` in the stack's next turn, within the hard deadline: the session's operations get a signal that
   * aborts on the caller's signal or at the deadline, which cancels the engine cleanly.
   */
  session<T>(
    stackName: string,
    options: SessionOptions,
    work: (session: StackSession) => Promise<T>,
  ): Promise<T> {
    const ticket: TicketRequest = { ...(options.operation ?? READ), order: options.order };
    // The deadline covers the wait for the name's turn too: an operation does not wait forever.
    const deadline = AbortSignal.timeout(this.options.deadlineMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    const turn = this.inTurn(stackName, ticket, options, signal, work);
    return settledBy(turn, deadline, CANCEL_GRACE_MS, (error) =>
      this.options.logger.warn(
        { stack: stackName, err: error },
        "an operation ended after its deadline; its caller was answered already",
      ),
    ).catch((error: unknown) => {
      if (deadline.aborted && !options.signal?.aborted) {
        throw new DeadlineError(stackName, Math.round(this.options.deadlineMs / 1000));
      }
      throw error;
    });
  }

  /**
   * Runs `work` holding the name's turn (and one of the slots), and records what it changed when the turn ends.
   */
  private async inTurn<T>(
    stackName: string,
    ticket: TicketRequest,
    { onOutput, waiting }: SessionOptions,
    signal: AbortSignal,
    work: (session: StackSession) => Promise<T>,
  ): Promise<T> {
    const acquired = this.options.coordinator.acquire(stackName, ticket, signal);
    const turn = await (waiting ? waiting(acquired) : acquired);
    const recorded = setsDesiredState(ticket.effect);
    const attempted: TurnFacts = { update: false, exists: undefined };
    let next: NameRecord | undefined;
    try {
      // (A mutation that a later applied one made pointless never gets here: the coordinator supersedes it.)
      this.adopt(stackName, turn.record.version, turn.takenOver);
      const result = await this.slots.run(() =>
        work(this.makeSession(stackName, AbortSignal.any([signal, turn.lost]), onOutput, attempted)),
      );
      if (attempted.update) {
        next = {
          version: turn.record.version + 1,
          applied: recorded
            ? {
                process: ticket.process,
                fn: ticket.fn,
                // Never backwards: a re-run of the applied call itself may carry an order a hair earlier (a record
                // written with its priority time, which has nanoseconds where the submission time has microseconds).
                order: Math.max(turn.order, turn.record.applied?.order ?? turn.order),
                at: new Date().toISOString(),
              }
            : turn.record.applied,
        };
      }
      return result;
    } finally {
      // A failed update changed the stack too (partly): the version moves on, the applied operation does not.
      if (attempted.update && !next) next = { ...turn.record, version: turn.record.version + 1 };
      if (next) this.versions.set(stackName, next.version);
      // Still in the turn, so that no operation on the name uses the directory meanwhile.
      if (attempted.exists === false) await this.removeWorkDir(stackName);
      await turn.release(next).catch((error: unknown) => {
        this.options.logger.error({ err: error, stack: stackName }, "could not end the turn on a name");
      });
    }
  }

  /**
   * Starts a turn: what this process cached about the stack is dropped when another process has updated it
   * since; a turn taken over from a holder that died marks the stack interrupted.
   */
  private adopt(stackName: string, version: number, takenOver: boolean): void {
    if (this.versions.get(stackName) !== version) {
      this.selected.delete(stackName);
      this.existing.delete(stackName);
      this.lastOutputs.delete(stackName);
      this.versions.set(stackName, version);
    }
    if (takenOver) this.interrupted.add(stackName);
  }

  /** Removes the work directory of a name whose stack does not exist (called in the name's turn only). */
  private async removeWorkDir(stackName: string): Promise<void> {
    this.selected.delete(stackName);
    this.workspaces.delete(stackName);
    this.existing.delete(stackName);
    this.lastOutputs.delete(stackName);
    await rm(this.workDir(stackName), { recursive: true, force: true }).catch((error: unknown) => {
      this.options.logger.warn({ err: error, stack: stackName }, "could not remove a stack's work directory");
    });
  }

  /**
   * The stack's last updates, newest first (kind, result, times, changes), and its outputs with secrets masked.
   * A read: it does not wait for the stack's queue, so it never touches the name's work directory (a turn may be
   * creating or removing it): it reads the stack from a scratch directory of its own (the state holds everything
   * reading needs, the passphrase's salt included). Throws UnknownStackError when there is no such stack.
   * Two commands naming the stack, nothing selected: the outputs as the CLI masks them (a secret output is
   * "[secret]", as `Stack.outputs()` marks it), and the history.
   */
  async inspect(stackName: string, updates = 5): Promise<{ outputs: Outputs; history: UpdateRecord[] }> {
    const lookups = join(this.options.dataDir, LOOKUPS);
    await mkdir(lookups, { recursive: true });
    const scratch = await mkdtemp(join(lookups, `${stackName}-`));
    try {
      const workspace = await LocalWorkspace.create(this.workspaceSettings(scratch));
      const cli = (args: string[]) =>
        runCli(this.command, [...args, "--stack", stackName], scratch, workspace.envVars);
      let outputs: Outputs;
      let history: HistoryEntry[];
      try {
        const [masked, past] = await Promise.all([
          cli(["stack", "output", "--json"]),
          cli(["stack", "history", "--json", "--page-size", String(Math.floor(updates)), "--page", "1"]),
        ]);
        outputs = JSON.parse(masked.stdout) as Outputs;
        history = JSON.parse(past.stdout) as HistoryEntry[];
      } catch (error) {
        if (isStackNotFound(error)) throw new UnknownStackError(stackName);
        throw error;
      }
      return {
        outputs,
        history: history.map((u) => ({
          kind: u.kind,
          result: u.result,
          startTime: new Date(u.startTime).toISOString(),
          endTime: u.endTime ? new Date(u.endTime).toISOString() : null,
          changes: (u.resourceChanges ?? {}) as ChangeSummary,
        })),
      };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  private makeSession(
    stackName: string,
    signal: AbortSignal,
    onOutput: ((line: string) => void) | undefined,
    attempted: TurnFacts,
  ) {
    const common = () => ({ onOutput: lineSplitter(this.mask, onOutput), signal, color: "never" as const });
    const session: StackSession = {
      signal,
      current: async () => {
        const cached = this.lastOutputs.get(stackName);
        if (cached) return cached;
        const outputs = await this.readOutputs(stackName, attempted);
        if (outputs) this.lastOutputs.set(stackName, outputs);
        return outputs;
      },
      up: async (program, { dryrun = false, cancel, refresh = false } = {}) => {
        const opts = {
          ...common(),
          ...(cancel ? { signal: AbortSignal.any([signal, cancel]) } : {}),
          ...(refresh ? { refresh: true } : {}),
        };
        try {
          if (dryrun) {
            const existed =
              (await this.known(stackName, attempted)) ??
              (await this.selectExisting(stackName, attempted)) !== undefined;
            const stack = await this.stack(stackName, program, existed ? "select" : "create");
            attempted.exists = true;
            const preview = await stack.preview(opts);
            // A preview of a new name leaves no empty stack behind (it would count as deployed).
            if (!existed) {
              await this.forget(stackName, stack);
              attempted.exists = false;
            }
            return { changes: preview.changeSummary, outputs: {} };
          }
          attempted.update = true;
          const result = await this.withLockRecovery(
            stackName,
            () => this.cli(stackName, ["cancel", "--yes"]),
            () =>
              this.withStorageRetry(stackName, opts, () => this.update(stackName, program, attempted, opts)),
          );
          this.lastOutputs.set(stackName, result.outputs);
          return { changes: result.changes, outputs: result.outputs };
        } catch (error) {
          // What the stack holds after a failed update is not what we cached: read it again next time.
          this.lastOutputs.delete(stackName);
          throw engineError(error, signal);
        } finally {
          opts.onOutput.flush();
        }
      },
      destroy: async ({ dryrun = false, signal: own } = {}) => {
        const stack = await this.selectExisting(stackName, attempted);
        if (!stack) throw new UnknownStackError(stackName);
        const opts = { ...common(), ...(own ? { signal: own } : {}) };
        try {
          if (dryrun) {
            // An empty program's preview is exactly what destroy would delete.
            (stack.workspace as LocalWorkspace).program = EMPTY_PROGRAM;
            return { changes: (await stack.preview(opts)).changeSummary };
          }
          attempted.update = true;
          const result = await this.withLockRecovery(
            stackName,
            () => stack.cancel(),
            () => this.withStorageRetry(stackName, opts, () => stack.destroy({ ...opts, remove: true })),
          );
          attempted.exists = false;
          this.interrupted.delete(stackName);
          this.selected.delete(stackName);
          this.existing.delete(stackName);
          this.lastOutputs.delete(stackName);
          return { changes: (result.summary?.resourceChanges ?? {}) as ChangeSummary };
        } catch (error) {
          throw engineError(error, opts.signal);
        } finally {
          opts.onOutput.flush();
        }
      },
    };
    return session;
  }

  private workDir(stackName: string): string {
    return join(this.options.dataDir, "stacks", stackName);
  }

  /** The settings of the name's workspace, its work directory created. */
  private async workspaceOptions(stackName: string) {
    const workDir = this.workDir(stackName);
    await mkdir(workDir, { recursive: true });
    return this.workspaceSettings(workDir);
  }

  private workspaceSettings(workDir: string) {
    return {
      workDir,
      pulumiCommand: this.command,
      secretsProvider: this.options.secretsProvider,
      // No backend here: it goes to the CLI in its environment (cliEnv), not into Pulumi.yaml.
      projectSettings: { name: this.options.project, runtime: "nodejs" as const },
      envVars: cliEnv(this.options),
    };
  }

  /** The name's workspace: its work directory with Pulumi.yaml written (no CLI runs for it). */
  private async workspace(stackName: string): Promise<LocalWorkspace> {
    let workspace = this.workspaces.get(stackName);
    if (!workspace) {
      workspace = await LocalWorkspace.create(await this.workspaceOptions(stackName));
      this.workspaces.set(stackName, workspace);
    }
    return workspace;
  }

  /** A CLI command on the name's stack, in its workspace (`--stack` names it: nothing is selected). */
  private async cli(
    stackName: string,
    args: string[],
    options: { onOutput?: (chunk: string) => void; signal?: AbortSignal } = {},
  ) {
    const workspace = await this.workspace(stackName);
    return runCli(
      this.command,
      [...args, "--stack", stackName],
      workspace.workDir,
      workspace.envVars,
      options,
    );
  }

  /**
   * Whether the name's stack exists, without running the CLI: what this turn or this process learned, else, for
   * a file backend, whether the backend holds the stack's checkpoint. Undefined when only the CLI can say.
   */
  private async known(stackName: string, facts: TurnFacts): Promise<boolean | undefined> {
    if (facts.exists !== undefined) return facts.exists;
    if (this.existing.has(stackName)) return true;
    return fileBackendHasStack(this.options.backendUrl, this.options.project, stackName);
  }

  /** The stack's outputs (secrets in plain), or undefined when it does not exist; the turn learns which. */
  private async readOutputs(stackName: string, facts: TurnFacts): Promise<Outputs | undefined> {
    if ((await this.known(stackName, facts)) === false) {
      facts.exists = false;
      return undefined;
    }
    try {
      const result = await this.cli(stackName, ["stack", "output", "--json", "--show-secrets"]);
      facts.exists = true;
      this.existing.add(stackName);
      return JSON.parse(result.stdout) as Outputs;
    } catch (error) {
      if (!isStackNotFound(error)) throw error;
      facts.exists = false;
      return undefined;
    }
  }

  /** `pulumi stack init` of the name (its secrets provider's settings go into its work directory). */
  private async init(stackName: string): Promise<void> {
    try {
      await this.cli(stackName, ["stack", "init", "--secrets-provider", this.options.secretsProvider]);
    } catch (error) {
      if (!(error instanceof StackAlreadyExistsError)) throw error;
    }
    this.existing.add(stackName);
  }

  /**
   * `pulumi up` of the program on the name's stack, which is created first when it does not exist (known from
   * the turn, the backend, or the update's own "no stack named" answer). A stack interrupted by a dead holder is
   * refreshed first (pending creates dropped).
   */
  private async update(
    stackName: string,
    program: PulumiFn,
    facts: TurnFacts,
    opts: { onOutput: (chunk: string) => void; signal: AbortSignal; refresh?: boolean },
  ) {
    const known = await this.known(stackName, facts);
    if (known === false) await this.init(stackName);
    facts.exists = true;
    if (this.interrupted.has(stackName)) {
      // An update was cut off (the executor was killed): reconcile the state with the cluster and
      // drop creates that never finished, so that this update converges.
      const stack = await this.stack(stackName, program, "select");
      await stack.refresh({ ...opts, color: "never", clearPendingCreates: true });
      this.interrupted.delete(stackName);
    }
    const workspace = await this.workspace(stackName);
    const run = () =>
      runUpdate({
        command: this.command,
        workDir: workspace.workDir,
        env: workspace.envVars,
        stackName,
        program,
        onOutput: opts.onOutput,
        signal: opts.signal,
        refresh: opts.refresh,
      });
    try {
      const outcome = await run();
      this.existing.add(stackName);
      return outcome;
    } catch (error) {
      // The CLI's own answer wins over what we thought we knew.
      if (!isStackNotFound(error)) throw error;
      await this.init(stackName);
      const outcome = await run();
      this.existing.add(stackName);
      return outcome;
    }
  }

  /**
   * The stack as an Automation API object (previews, destroys, refreshes), selected or created once and then
   * reused with the operation's program. Called only from inside the stack's queue.
   */
  private async stack(stackName: string, program: PulumiFn, mode: "select" | "create"): Promise<Stack> {
    let stack = this.selected.get(stackName);
    if (!stack) {
      const args = { projectName: this.options.project, stackName, program };
      const opts = await this.workspaceOptions(stackName);
      stack = await (mode === "create"
        ? LocalWorkspace.createStack(args, opts).catch((error: unknown) => {
            if (!(error instanceof StackAlreadyExistsError)) throw error;
            return LocalWorkspace.selectStack(args, opts);
          })
        : LocalWorkspace.selectStack(args, opts));
      this.selected.set(stackName, stack);
      this.existing.add(stackName);
    }
    (stack.workspace as LocalWorkspace).program = program;
    return stack;
  }

  /** Removes a stack that holds no resources (e.g. one a preview created). */
  private async forget(stackName: string, stack: Stack): Promise<void> {
    await stack.workspace.removeStack(stackName);
    this.selected.delete(stackName);
    this.existing.delete(stackName);
    this.lastOutputs.delete(stackName);
  }

  /** The existing stack, or undefined when there is none; what it learned goes into the turn's facts. */
  private async selectExisting(stackName: string, facts: TurnFacts): Promise<Stack | undefined> {
    if ((await this.known(stackName, facts)) === false) {
      facts.exists = false;
      return undefined;
    }
    try {
      const stack = await this.stack(stackName, EMPTY_PROGRAM, "select");
      facts.exists = true;
      return stack;
    } catch (error) {
      if (!isStackNotFound(error)) throw error;
      facts.exists = false;
      return undefined;
    }
  }

  /**
   * Tries once more, after a pause, an operation that the state backend's storage failed: such failures can be
   * transient. MinIO, for one, answers a new object's PutObject (a lock) with 403 AccessDenied while a concurrent
   * DeleteObject (another stack's lock released) removes the prefix they share. The failure may have come after
   * resources changed (a checkpoint or history write), so the stack is refreshed before it is updated again.
   */
  private async withStorageRetry<T>(
    stackName: string,
    opts: { signal: AbortSignal; onOutput: (chunk: string) => void },
    operation: () => Promise<T>,
  ): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (opts.signal.aborted || !isStorageFailure(error)) throw error;
      this.interrupted.add(stackName);
      const reason = meaningfulLine(error.message);
      this.options.logger.warn(
        { stack: stackName, reason },
        "the state backend's storage failed an operation; trying it once more",
      );
      // The caller's log shows the failed attempt's output: say why another one follows.
      opts.onOutput(`The state backend's storage failed the operation (${reason}); trying it once more.\n`);
      await sleep(STORAGE_RETRY_MS, undefined, { signal: opts.signal });
      return operation();
    }
  }

  /**
   * Retries once after removing the lock of a dead holder. A single writer judges the lock files; with
   * replicas, the name's turn proves it: only the turn's holder updates the stack, so a lock met during the
   * turn was left by an earlier holder that is gone, and `pulumi cancel` removes it.
   */
  private async withLockRecovery<T>(
    stackName: string,
    cancel: () => Promise<unknown>,
    operation: () => Promise<T>,
  ): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (!(error instanceof ConcurrentUpdateError)) throw error;
      if (this.options.coordinator.kind === "local") {
        const removed = await removeStaleLocks(this.options.backendUrl, this.options.project, {
          stack: stackName,
          singleWriter: true,
        });
        if (removed.length === 0) throw new StackLockedError(stackName);
      } else {
        await cancel();
      }
      this.interrupted.add(stackName);
      this.options.logger.warn({ stack: stackName }, "removed a stale Pulumi lock; retrying");
      return operation();
    }
  }
}

/**
 * Whether a file backend holds the stack: its checkpoint `<backend>/.pulumi/stacks/<project>/<stack>.json`
 * (`.json.gz` when the backend compresses; directly under stacks/ in the legacy layout) is what the CLI reads
 * to find a stack, so no file means "no stack named ..." from the CLI too. Undefined for other backends.
 */
export async function fileBackendHasStack(
  backendUrl: string,
  project: string,
  stackName: string,
): Promise<boolean | undefined> {
  if (!backendUrl.startsWith("file://")) return undefined;
  const root = join(fileURLToPath(backendUrl), ".pulumi", "stacks");
  for (const dir of [join(root, project), root]) {
    for (const file of [`${stackName}.json`, `${stackName}.json.gz`]) {
      const found = await access(join(dir, file)).then(
        () => true,
        () => false,
      );
      if (found) return true;
    }
  }
  return false;
}

/** One entry of `pulumi stack history --json`. */
interface HistoryEntry {
  kind: string;
  result: string;
  startTime: string;
  endTime?: string;
  resourceChanges?: ChangeSummary;
}

/** A CLI failure as an EngineError (first meaningful line + the whole output); others as they are. */
function engineError(error: unknown, signal: AbortSignal): unknown {
  if (signal.aborted || !(error instanceof CommandError)) return error;
  const text = error.message;
  return new EngineError(meaningfulLine(text), text, { cause: error });
}

function isStackNotFound(error: unknown): boolean {
  return error instanceof StackNotFoundError || /no stack named/i.test(String(error));
}

/** Turns the engine's output chunks into whole, non-empty lines, with secrets masked. */
function lineSplitter(
  mask: (text: string) => string,
  onLine?: (line: string) => void,
): ((chunk: string) => void) & { flush(): void } {
  let partial = "";
  const emit = (line: string) => {
    if (!NOISE.test(line)) onLine?.(mask(line.trimEnd()));
  };
  const feed = (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) emit(line);
  };
  return Object.assign(feed, {
    flush() {
      emit(partial);
      partial = "";
    },
  });
}

/** The environment of every Pulumi CLI process the manager runs. */
function cliEnv(options: StackManagerOptions): Record<string, string> {
  return {
    ...options.env,
    // The backend's URL may hold a database password: it is given here, never written to a work directory.
    PULUMI_BACKEND_URL: options.backendUrl,
    ...(options.passphrase ? { PULUMI_CONFIG_PASSPHRASE: options.passphrase } : {}),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    // A work directory without the stack's settings (another replica's stack, a new pod) opens the stack
    // with the secrets provider its state records, instead of a new passphrase salt (a second key
    // derivation, a changed salt) or, for a key manager's stack, a passphrase it does not have.
    PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER: "true",
  };
}

/** What the state backend and its encryption are opened with: never to be shown. */
function stateSecrets(options: StackManagerOptions): string[] {
  const password = URL.parse(options.backendUrl)?.password;
  return [
    ...(options.passphrase ? [options.passphrase] : []),
    ...(password ? [password, decoded(password)] : []),
    ...secretValues(options.env),
  ];
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // not valid percent-encoding: the CLI quotes it as written
  }
}

/**
 * The outcome of `work`, or, once `deadline` has aborted and `graceMs` passed without it, a rejection with the
 * deadline's reason: a caller is answered in time even when some of the work ignores its signal. Work that
 * settles later goes to `late` with its error, if any (it is never left unhandled).
 */
export function settledBy<T>(
  work: Promise<T>,
  deadline: AbortSignal,
  graceMs: number,
  late: (error: unknown) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let answered = false;
    const giveUp = () => {
      timer = setTimeout(() => {
        answered = true;
        reject(deadline.reason);
      }, graceMs);
    };
    if (deadline.aborted) giveUp();
    else deadline.addEventListener("abort", giveUp, { once: true });
    const settle = (done: () => void, error?: unknown) => {
      clearTimeout(timer);
      deadline.removeEventListener("abort", giveUp);
      if (answered) late(error);
      else done();
    };
    work.then(
      (value) => settle(() => resolve(value)),
      (error: unknown) => settle(() => reject(error), error),
    );
  });
}

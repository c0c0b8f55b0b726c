/**
 * Atoms as local child processes. Each atom is a process group (spawned detached), so that stopping it reaches
 * whatever it started, as stopping a container does. Logs are captured in a bounded buffer that outlives the process.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { Readable } from "node:stream";
import { abortable } from "./abort.js";
import {
  type Atom,
  AtomAlreadyExistsError,
  type AtomContainer,
  AtomNotFoundError,
  type AtomState,
  type CallOptions,
  type Engine,
  isFinished,
  LABEL,
  type ListOptions,
  type LogsOptions,
  MAIN_CONTAINER,
  type StopOptions,
} from "./engine.js";
import { EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, resultOfExitCode } from "./exit-result.js";
import { DEFAULT_LOG_LIMITS, LogBuffer, type LogLimits, type LogLine } from "./log-buffer.js";

export const PROCESS_ENGINE = "process";

export interface ProcessSpec {
  /** The atom's id; unique among the atoms the engine remembers. */
  name: string;
  /** Executable, looked up on PATH when it has no slash. No shell is involved. */
  command: string;
  args?: string[];
  /** Added to (and overriding) this process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  labels?: Record<string, string>;
}

export interface ProcessEngineOptions {
  /** Default time between SIGTERM and SIGKILL on stop. */
  gracePeriodMs?: number;
  logLimits?: Partial<LogLimits>;
  /** How many stopped atoms (and their logs) to remember; the oldest are forgotten first. */
  keepStopped?: number;
}

interface ProcessRecord {
  id: string;
  labels: Record<string, string>;
  state: AtomState;
  createdAt: Date;
  startedAt?: Date;
  stoppedAt?: Date;
  exitCode?: number;
  reason?: string;
  message?: string;
  /** Also the process group id. Undefined when spawning failed. */
  pid?: number;
  logs: LogBuffer;
  stopped: Promise<void>;
  killTimer?: NodeJS.Timeout;
}

export class ProcessEngine implements Engine<ProcessSpec> {
  readonly name = PROCESS_ENGINE;
  private readonly records = new Map<string, ProcessRecord>();
  private readonly gracePeriodMs: number;
  private readonly logLimits: LogLimits;
  private readonly keepStopped: number;

  constructor(options: ProcessEngineOptions = {}) {
    this.gracePeriodMs = options.gracePeriodMs ?? 10_000;
    this.logLimits = { ...DEFAULT_LOG_LIMITS, ...options.logLimits };
    this.keepStopped = options.keepStopped ?? 100;
    if (!(this.gracePeriodMs >= 0)) throw new TypeError("process engine: gracePeriodMs must be >= 0");
    if (!Number.isInteger(this.keepStopped) || this.keepStopped < 0) {
      throw new TypeError("process engine: keepStopped must be an integer >= 0");
    }
  }

  async get(id: string, { signal }: CallOptions): Promise<Atom> {
    signal.throwIfAborted();
    return snapshot(this.find(id));
  }

  async list({ labels = {}, signal }: ListOptions): Promise<Atom[]> {
    signal.throwIfAborted();
    const wanted = Object.entries(labels);
    return [...this.records.values()]
      .filter((record) => wanted.every(([key, value]) => record.labels[key] === value))
      .map(snapshot);
  }

  async create(spec: ProcessSpec, { signal }: CallOptions): Promise<Atom> {
    signal.throwIfAborted();
    if (!spec.name) throw new TypeError("process engine: a process needs a name");
    if (!spec.command) throw new TypeError(`process engine: "${spec.name}" needs a command`);
    if (this.records.has(spec.name)) throw new AtomAlreadyExistsError(this.name, spec.name);

    let markStopped = () => {};
    const stopped = new Promise<void>((resolve) => {
      markStopped = resolve;
    });
    const record: ProcessRecord = {
      id: spec.name,
      labels: { [LABEL]: "true", ...spec.labels },
      state: "created",
      createdAt: new Date(),
      logs: new LogBuffer(this.logLimits),
      stopped,
    };
    this.records.set(record.id, record);

    const child = spawn(spec.command, spec.args ?? [], {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    record.pid = child.pid;
    child.stdout.on("data", (chunk: Buffer) => record.logs.write("stdout", chunk));
    child.stderr.on("data", (chunk: Buffer) => record.logs.write("stderr", chunk));

    let spawnError: NodeJS.ErrnoException | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    child.once("spawn", () => {
      record.startedAt = new Date();
      if (record.state === "created") record.state = "running";
    });
    child.on("error", (error: NodeJS.ErrnoException) => {
      // Later errors can only come from kill(), which killGroup() does itself with process.kill().
      if (record.startedAt === undefined) spawnError = error;
    });
    child.once("exit", (code, exitSignal) => {
      exit = { code, signal: exitSignal };
      // Like a container whose main process ended: nothing it started outlives it.
      if (record.pid !== undefined) killGroupQuietly(record.pid, "SIGKILL");
    });
    // "close" comes after "exit" (or a spawn error) once stdout and stderr are drained: the logs are complete.
    child.once("close", () => {
      clearTimeout(record.killTimer);
      Object.assign(record, endOf(spawnError, exit));
      record.state = "stopped";
      record.stoppedAt = new Date();
      record.logs.end(record.stoppedAt);
      markStopped();
      this.forgetOldStopped();
    });
    return snapshot(record);
  }

  async stop(id: string, { force, gracePeriodMs, signal }: StopOptions): Promise<void> {
    signal.throwIfAborted();
    const record = this.records.get(id);
    // Already gone (or never known) is what stopping wants: success, like a 404 on deletion.
    if (!record || isFinished(record.state) || record.pid === undefined) return;
    record.state = "stopping";
    if (force) {
      killGroup(record.pid, "SIGKILL");
      return;
    }
    killGroup(record.pid, "SIGTERM");
    if (record.killTimer === undefined) {
      const pid = record.pid;
      record.killTimer = setTimeout(
        () => killGroupQuietly(pid, "SIGKILL"),
        gracePeriodMs ?? this.gracePeriodMs,
      );
    }
  }

  async logs(id: string, options: LogsOptions): Promise<Readable> {
    const { container, follow, since, tail, timestamps, signal } = options;
    signal.throwIfAborted();
    const record = this.find(id);
    if (container !== undefined && container !== MAIN_CONTAINER) {
      throw new TypeError(
        `process engine: "${id}" has one container, "${MAIN_CONTAINER}", not "${container}"`,
      );
    }
    if (tail !== undefined && !(Number.isInteger(tail) && tail >= 1)) {
      throw new TypeError("logs: tail must be an integer >= 1");
    }
    const render = (line: LogLine) =>
      timestamps ? `${line.time.toISOString()} ${line.text}\n` : `${line.text}\n`;
    const lines = follow ? record.logs.follow({ since, tail }, signal) : record.logs.lines({ since, tail });
    return Readable.from(renderLines(lines, render, signal), { objectMode: false });
  }

  async wait(id: string, { signal }: CallOptions): Promise<Atom> {
    signal.throwIfAborted();
    const record = this.find(id);
    await abortable(record.stopped, signal);
    return snapshot(record);
  }

  private find(id: string): ProcessRecord {
    const record = this.records.get(id);
    if (!record) throw new AtomNotFoundError(this.name, id);
    return record;
  }

  private forgetOldStopped(): void {
    const stopped = [...this.records.values()].filter((r) => r.state === "stopped");
    for (const record of stopped.slice(0, Math.max(0, stopped.length - this.keepStopped))) {
      this.records.delete(record.id);
    }
  }
}

/** How the process ended, in the terms every engine shares (exit codes as a shell or container runtime reports them). */
function endOf(
  spawnError: NodeJS.ErrnoException | undefined,
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined,
): Pick<ProcessRecord, "exitCode" | "reason" | "message"> {
  if (spawnError) {
    const exitCode = spawnError.code === "ENOENT" ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE;
    return { exitCode, reason: spawnError.code, message: spawnError.message };
  }
  if (exit?.signal) return { exitCode: 128 + constants.signals[exit.signal], reason: exit.signal };
  return { exitCode: exit?.code ?? undefined };
}

function snapshot(record: ProcessRecord): Atom {
  const result =
    record.state === "stopped" && record.exitCode !== undefined
      ? resultOfExitCode(record.exitCode)
      : undefined;
  const container: AtomContainer = {
    name: MAIN_CONTAINER,
    state: record.state === "stopping" ? "running" : record.state,
    result,
    exitCode: record.exitCode,
    reason: record.reason,
    message: record.message,
    restarts: 0,
  };
  return {
    id: record.id,
    engine: PROCESS_ENGINE,
    state: record.state,
    result,
    exitCode: record.exitCode,
    reason: record.reason,
    message: record.message,
    createdAt: record.createdAt,
    startedAt: record.startedAt,
    stoppedAt: record.stoppedAt,
    labels: { ...record.labels },
    containers: [container],
  };
}

/** Signals the whole process group; a group that is already gone is not an error. */
function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** For event handlers and timers, where a throw would crash the whole process (EPERM: a member ran setuid). */
function killGroupQuietly(pgid: number, signal: NodeJS.Signals): void {
  try {
    killGroup(pgid, signal);
  } catch {
    // Nothing more can be done for a group we may not signal.
  }
}

async function* renderLines(
  lines: Iterable<LogLine> | AsyncIterable<LogLine>,
  render: (line: LogLine) => string,
  signal: AbortSignal,
): AsyncGenerator<string> {
  try {
    for await (const line of lines) yield render(line);
  } catch (error) {
    // events.on() reports cancellation as its own AbortError: hand back the caller's reason, as the other calls do.
    throw signal.aborted ? signal.reason : error;
  }
}

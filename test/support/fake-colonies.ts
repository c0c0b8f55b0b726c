/**
 * An in-memory Colonies server behind the ColoniesApi interface, for the executor runtime's unit tests, and the
 * few helpers those tests share (a configuration, a logger whose lines can be read, waiting in fake time).
 *
 * It keeps what the runtime relies on: executors (added, approved, removed; a name is taken until removed),
 * functions, a FIFO queue of waiting processes handed to long-polling assigns, closes and fails accepted once
 * and only from the executor the process is assigned to, and process logs. Every call is recorded (method,
 * fake time) before it is answered; `fail` scripts errors for the next calls of a method, and `goDown` makes the
 * server unreachable (failing the long-polls in flight too) until `comeBack`.
 */
import type { Logger } from "pino";
import pino from "pino";
import { afterEach, beforeEach, vi } from "vitest";
import type { ColoniesApi } from "../../src/colonies/client.js";
import { generatePrivateKey, idOf } from "../../src/colonies/crypto.js";
import { ColoniesError } from "../../src/colonies/errors.js";
import type { CallOptions } from "../../src/colonies/transport.js";
import {
  type ColoniesFunction,
  type Executor,
  type Process,
  ProcessState,
} from "../../src/colonies/types.js";
import type { RuntimeConfig } from "../../src/executor/config.js";
import { ExecutorRuntime } from "../../src/executor/runtime.js";
import { type ExecutorInstance, ProcessError } from "../../src/executor/types.js";

export type Method = Exclude<keyof ColoniesApi, "close">;

export interface Call {
  method: Method | "close";
  /** Fake time (Date.now()) when the call was made. */
  at: number;
  args: unknown[];
}

/** A close or fail the server accepted. */
export interface Report {
  processId: string;
  kind: "success" | "failed";
  out?: unknown[];
  errors?: string[];
  at: number;
}

const MSGTYPE: Record<Method, string> = {
  addExecutor: "addexecutormsg",
  approveExecutor: "approveexecutormsg",
  removeExecutor: "removeexecutormsg",
  getExecutors: "getexecutorsmsg",
  addFunction: "addfunctionmsg",
  assign: "assignprocessmsg",
  heartbeat: "assignprocessmsg",
  closeSuccessful: "closesuccessfulmsg",
  closeFailed: "closefailedmsg",
  addLog: "addlogmsg",
  getProcess: "getprocessmsg",
};

/** The error the transport gives when the server cannot be reached. */
export function unreachable(method: Method): ColoniesError {
  return new ColoniesError(MSGTYPE[method], 0, "ECONNREFUSED (fake)");
}

/** The error the transport gives for an HTTP error status. */
export function httpError(method: Method, status: number, message: string): ColoniesError {
  return new ColoniesError(MSGTYPE[method], status, message);
}

interface StoredExecutor extends Executor {
  approved: boolean;
}

export class FakeColonies implements ColoniesApi {
  readonly colonyName = "fake-colony";
  readonly colonyPrvKey = generatePrivateKey();
  readonly calls: Call[] = [];
  /** By name. */
  readonly executors = new Map<string, StoredExecutor>();
  readonly functions: ColoniesFunction[] = [];
  readonly reports: Report[] = [];
  readonly logs: { processId: string; message: string }[] = [];
  readonly processes = new Map<string, Process>();
  /** Assign requests being answered now, and the most there ever were at once. */
  assignsInFlight = 0;
  maxAssignsInFlight = 0;
  closed = false;
  private readonly queue: Process[] = [];
  private readonly heartbeatQueue: Process[] = [];
  /** Long-polls waiting for work: each takes the head of the queue if it can. */
  private readonly pollers = new Set<{ take: () => boolean; drop: (error: unknown) => void }>();
  private readonly faults = new Map<Method, unknown[]>();
  private down = false;
  private nextId = 1;

  // Scripting.

  /** The next calls of `method` fail with these errors, in order, before it answers normally again. */
  fail(method: Method, ...errors: unknown[]): void {
    this.faults.set(method, [...(this.faults.get(method) ?? []), ...errors]);
  }

  /** The server stops answering: every call fails as unreachable, the long-polls in flight too. */
  goDown(): void {
    this.down = true;
    for (const poller of [...this.pollers]) poller.drop(unreachable("assign"));
  }

  comeBack(): void {
    this.down = false;
  }

  /** An executor added and approved by someone else (a pre-registered executor, or an earlier run's record). */
  preRegister(prvKey: string, executorName: string, executorType = "test"): void {
    this.executors.set(executorName, {
      executorid: idOf(prvKey),
      executorname: executorName,
      executortype: executorType,
      colonyname: this.colonyName,
      approved: true,
    });
  }

  /** Drops an executor and its functions, as the server does with one it has not heard from for a while. */
  forget(executorName: string): void {
    this.executors.delete(executorName);
    for (let i = this.functions.length - 1; i >= 0; i--) {
      if (this.functions[i]?.executorname === executorName) this.functions.splice(i, 1);
    }
  }

  submit(
    funcname: string,
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
    maxexectime?: number,
  ): Process {
    const process = this.newProcess(funcname, args, kwargs);
    if (maxexectime !== undefined) process.spec.maxexectime = maxexectime;
    this.queue.push(process);
    for (const poller of [...this.pollers]) if (poller.take()) break;
    return process;
  }

  /** Puts a running process back in the queue, as the server does when its maxexectime runs out. */
  requeue(processId: string): void {
    const process = this.processes.get(processId);
    if (!process) throw new Error(`no process ${processId}`);
    process.state = ProcessState.WAITING;
    process.isassigned = false;
    process.assignedexecutorid = "";
    process.retries++;
    this.queue.push(process);
  }

  /** A process the next heartbeat is (wrongly) assigned, as a server ignoring the CPU budget would. */
  submitToHeartbeat(funcname: string, args: unknown[] = []): Process {
    const process = this.newProcess(funcname, args, {});
    this.heartbeatQueue.push(process);
    return process;
  }

  // Reading what happened.

  callsOf(method: Method | "close"): Call[] {
    return this.calls.filter((call) => call.method === method);
  }

  /** Index in `calls` of the first call of `method`, -1 when there was none. */
  indexOf(method: Method | "close"): number {
    return this.calls.findIndex((call) => call.method === method);
  }

  reportsOf(processId: string): Report[] {
    return this.reports.filter((report) => report.processId === processId);
  }

  state(processId: string): number | undefined {
    return this.processes.get(processId)?.state;
  }

  // ColoniesApi.

  async addExecutor(executor: Executor, colonyPrvKey: string, _options?: CallOptions): Promise<Executor> {
    this.enter("addExecutor", [executor]);
    if (colonyPrvKey !== this.colonyPrvKey) throw httpError("addExecutor", 403, "access denied");
    if (this.executors.has(executor.executorname)) {
      throw httpError("addExecutor", 400, `executor with name ${executor.executorname} already exists`);
    }
    this.executors.set(executor.executorname, { ...executor, approved: false });
    return executor;
  }

  async approveExecutor(colonyName: string, executorName: string, colonyPrvKey: string): Promise<object> {
    this.enter("approveExecutor", [colonyName, executorName]);
    if (colonyPrvKey !== this.colonyPrvKey) throw httpError("approveExecutor", 403, "access denied");
    const executor = this.executors.get(executorName);
    if (!executor) throw httpError("approveExecutor", 404, "executor not found");
    executor.approved = true;
    return {};
  }

  async removeExecutor(
    colonyName: string,
    executorName: string,
    colonyPrvKey: string,
    options?: CallOptions,
  ): Promise<object> {
    this.enter("removeExecutor", [colonyName, executorName, options]);
    if (colonyPrvKey !== this.colonyPrvKey) throw httpError("removeExecutor", 403, "access denied");
    if (!this.executors.delete(executorName)) throw httpError("removeExecutor", 404, "executor not found");
    return {};
  }

  async getExecutors(colonyName: string, prvKey: string): Promise<Executor[]> {
    this.enter("getExecutors", [colonyName]);
    // As the real server (1.9.12): any member, approved or not.
    this.member("getExecutors", prvKey, false);
    return [...this.executors.values()].filter((e) => e.colonyname === colonyName);
  }

  async addFunction(fun: ColoniesFunction, prvKey: string): Promise<ColoniesFunction> {
    this.enter("addFunction", [fun]);
    this.member("addFunction", prvKey);
    if (this.functions.some((f) => f.executorname === fun.executorname && f.funcname === fun.funcname)) {
      throw httpError("addFunction", 400, "function already exists");
    }
    this.functions.push(fun);
    return fun;
  }

  async assign(colonyName: string, timeoutSeconds: number, prvKey: string, options: CallOptions = {}) {
    this.enter("assign", [colonyName, timeoutSeconds]);
    const executor = this.member("assign", prvKey);
    const { signal } = options;
    if (signal?.aborted) throw signal.reason;
    this.assignsInFlight++;
    this.maxAssignsInFlight = Math.max(this.maxAssignsInFlight, this.assignsInFlight);
    try {
      return await new Promise<Process>((resolve, reject) => {
        const poller = {
          take: () => {
            const process = this.queue.shift();
            if (!process) return false;
            end();
            resolve(this.assignTo(process, executor));
            return true;
          },
          drop: (error: unknown) => {
            end();
            reject(error);
          },
        };
        const onAbort = () => poller.drop(signal?.reason);
        const timer = setTimeout(
          () => poller.drop(httpError("assign", 404, "no process found")),
          timeoutSeconds * 1000,
        );
        const end = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          this.pollers.delete(poller);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        if (!poller.take()) this.pollers.add(poller);
      });
    } finally {
      this.assignsInFlight--;
    }
  }

  async heartbeat(colonyName: string, prvKey: string): Promise<Process | null> {
    this.enter("heartbeat", [colonyName]);
    const executor = this.member("heartbeat", prvKey);
    const process = this.heartbeatQueue.shift();
    return process ? this.assignTo(process, executor) : null;
  }

  async closeSuccessful(processId: string, out: unknown[], prvKey: string): Promise<object> {
    this.enter("closeSuccessful", [processId, out]);
    this.finish("closeSuccessful", processId, prvKey, { kind: "success", out });
    return {};
  }

  async closeFailed(processId: string, errors: string[], prvKey: string): Promise<object> {
    this.enter("closeFailed", [processId, errors]);
    this.finish("closeFailed", processId, prvKey, { kind: "failed", errors });
    return {};
  }

  async addLog(processId: string, message: string, prvKey: string): Promise<object> {
    this.enter("addLog", [processId, message]);
    this.member("addLog", prvKey);
    this.logs.push({ processId, message });
    return {};
  }

  async getProcess(processId: string, prvKey: string): Promise<Process> {
    this.enter("getProcess", [processId]);
    this.member("getProcess", prvKey);
    const process = this.processes.get(processId);
    if (!process) throw httpError("getProcess", 404, "process not found");
    return structuredClone(process);
  }

  close(): void {
    this.calls.push({ method: "close", at: Date.now(), args: [] });
    this.closed = true;
  }

  // Internals.

  /** Records the call, then fails it if the server is down or a fault is scripted. */
  private enter(method: Method, args: unknown[]): void {
    this.calls.push({ method, at: Date.now(), args });
    if (this.down) throw unreachable(method);
    const fault = this.faults.get(method)?.shift();
    if (fault !== undefined) throw fault;
  }

  /** The approved executor signing with `prvKey`, as the server checks membership. */
  private member(method: Method, prvKey: string, approved = true): StoredExecutor {
    const id = idOf(prvKey);
    const executor = [...this.executors.values()].find(
      (e) => e.executorid === id && (e.approved || !approved),
    );
    if (!executor) throw httpError(method, 403, "access denied: not a member of the colony");
    return executor;
  }

  private finish(
    method: "closeSuccessful" | "closeFailed",
    processId: string,
    prvKey: string,
    report: Omit<Report, "processId" | "at">,
  ): void {
    const process = this.processes.get(processId);
    if (!process) throw httpError(method, 404, "process not found");
    if (process.state !== ProcessState.RUNNING || process.assignedexecutorid !== idOf(prvKey)) {
      throw httpError(method, 403, "process is not running on this executor");
    }
    process.state = report.kind === "success" ? ProcessState.SUCCESS : ProcessState.FAILED;
    process.out = report.out ?? null;
    process.errors = report.errors ?? null;
    this.reports.push({ processId, at: Date.now(), ...report });
  }

  private assignTo(process: Process, executor: StoredExecutor): Process {
    process.state = ProcessState.RUNNING;
    process.isassigned = true;
    process.assignedexecutorid = executor.executorid;
    process.starttime = new Date().toISOString();
    return structuredClone(process);
  }

  private newProcess(funcname: string, args: unknown[], kwargs: Record<string, unknown>): Process {
    const process: Process = {
      processid: `process-${this.nextId++}`,
      initiatorid: "",
      initiatorname: "",
      assignedexecutorid: "",
      isassigned: false,
      state: ProcessState.WAITING,
      prioritytime: this.nextId,
      submissiontime: new Date().toISOString(),
      starttime: "",
      endtime: "",
      retries: 0,
      spec: { funcname, args, kwargs, conditions: { colonyname: this.colonyName, executortype: "test" } },
      in: null,
      out: null,
      errors: null,
    };
    this.processes.set(process.processid, process);
    return process;
  }
}

/** A runtime configuration for the fake: self-registering, one slot, no heartbeat, no HTTP endpoint. */
export function fakeConfig(fake: FakeColonies, overrides: Partial<RuntimeConfig> = {}): RuntimeConfig {
  return {
    server: { host: "fake.invalid", port: 1, tls: false },
    colonyName: fake.colonyName,
    colonyPrvKey: fake.colonyPrvKey,
    executorPrvKey: generatePrivateKey(),
    executorName: "test-executor",
    executorType: "test",
    concurrency: 1,
    assignTimeoutSeconds: 60,
    heartbeatMs: 0,
    shutdownGraceMs: 30_000,
    http: null,
    log: { level: "debug", pretty: false },
    locationName: "",
    ...overrides,
  };
}

export interface LogLine {
  level: number;
  msg: string;
  err?: { message: string; type?: string };
  [field: string]: unknown;
}

/** A pino logger writing parsed JSON lines into `lines`, so that tests can assert on what was logged. */
export function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: "debug" },
    {
      write: (line: string) => {
        lines.push(JSON.parse(line) as LogLine);
      },
    },
  );
  return { logger, lines };
}

/** pino's numeric levels. */
export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/**
 * Advances fake timers in small steps until `condition` holds; fails after `limitMs` of fake time, naming
 * `what`. Needs vi.useFakeTimers().
 */
export async function until(what: string, condition: () => boolean, limitMs = 120_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() >= deadline) throw new Error(`not ${what} after ${limitMs} ms (fake time)`);
    await vi.advanceTimersByTimeAsync(5);
  }
}

/** Advances fake timers by `ms`, running what falls due. */
export async function elapse(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

/** A promise that can be settled from outside, with whether it has been. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void; isOpen: () => boolean } {
  let open!: (value: T) => void;
  let opened = false;
  const promise = new Promise<T>((resolve) => {
    open = (value) => {
      opened = true;
      resolve(value);
    };
  });
  return { promise, open, isOpen: () => opened };
}

/** What a probe's handlers observed. */
export interface ProbeState {
  /** Handlers running now, the most at once, and the most slots busy at once (handlers + assigns in flight). */
  running: number;
  peak: number;
  peakBusy: number;
  /** Process ids in the order their handlers started, and how often each started. */
  started: string[];
  /** Fake time at which a handler saw its abort signal, by process id. */
  abortedAt: Map<string, number>;
  /** How many calls the fake had recorded when the runtime closed the instance; undefined while open. */
  closedAfterCalls: number | undefined;
}

/**
 * A test executor: `hold` (holds its slot for `ms` of fake time; gives up on abort unless `stubborn`), `echo`,
 * `explode` (throws a two-line Error), `refuse` (throws a ProcessError with details), `wrong` (returns no list).
 */
export function probe(fake: FakeColonies): { instance: ExecutorInstance; state: ProbeState } {
  const state: ProbeState = {
    running: 0,
    peak: 0,
    peakBusy: 0,
    started: [],
    abortedAt: new Map(),
    closedAfterCalls: undefined,
  };
  const instance: ExecutorInstance = {
    functions: [
      {
        name: "hold",
        description: "holds a slot",
        args: [{ name: "ms", type: "int", min: 0, description: "how long" }],
        kwargs: [{ name: "stubborn", type: "bool", description: "ignore the abort signal" }],
        async handler(args, ctx) {
          state.started.push(ctx.processId);
          state.running++;
          state.peak = Math.max(state.peak, state.running);
          state.peakBusy = Math.max(state.peakBusy, state.running + fake.assignsInFlight);
          try {
            await new Promise<void>((resolve, reject) => {
              const timer = setTimeout(resolve, args.ms as number);
              ctx.signal.addEventListener(
                "abort",
                () => {
                  state.abortedAt.set(ctx.processId, Date.now());
                  if (args.stubborn) return;
                  clearTimeout(timer);
                  reject(ctx.signal.reason);
                },
                { once: true },
              );
            });
            return [args.ms];
          } finally {
            state.running--;
          }
        },
      },
      {
        name: "echo",
        description: "returns its argument",
        args: [{ name: "text", type: "string", description: "what to return" }],
        async handler(args, ctx) {
          state.started.push(ctx.processId);
          return [args.text];
        },
      },
      {
        name: "explode",
        description: "throws",
        args: [],
        async handler(_args, ctx) {
          state.started.push(ctx.processId);
          throw new Error("boom: first line\nsecond line with details");
        },
      },
      {
        name: "refuse",
        description: "fails on purpose",
        args: [],
        async handler(_args, ctx) {
          state.started.push(ctx.processId);
          throw new ProcessError("refuse: not today", "the whole story, for the process log");
        },
      },
      {
        name: "wrong",
        description: "returns something that is not a list",
        args: [],
        async handler(_args, ctx) {
          state.started.push(ctx.processId);
          return "not a list" as unknown as unknown[];
        },
      },
    ],
    async close() {
      state.closedAfterCalls = fake.calls.length;
    },
  };
  return { instance, state };
}

const started = new Set<ExecutorRuntime>();

/** Starts a runtime with a probe on `fake` (registration included); `stopStarted` ends it after the test. */
export async function startOnFake(
  overrides: Partial<RuntimeConfig> = {},
  fake = new FakeColonies(),
  instanceOverrides: Partial<ExecutorInstance> = {},
) {
  const config = fakeConfig(fake, overrides);
  const probed = probe(fake);
  const { state } = probed;
  const instance = { ...probed.instance, ...instanceOverrides };
  const { logger, lines } = capturingLogger();
  const runtime = new ExecutorRuntime(config, instance, logger, fake);
  started.add(runtime);
  await runtime.start();
  return { fake, config, runtime, state, lines };
}

/** Forces every runtime started by startOnFake to stop, in fake time (for afterEach). */
export async function stopStarted(): Promise<void> {
  for (const runtime of started) {
    let stopped = false;
    void runtime.shutdown("end of test").then(() => {
      stopped = true;
    });
    void runtime.shutdown("end of test");
    await until("stopped at the end of the test", () => stopped);
  }
  started.clear();
}

/** Fake time for every test of the calling file; runtimes started on the fake are stopped after each test. */
export function useFakeRuntimeTime(): void {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(async () => {
    await stopStarted();
    vi.restoreAllMocks();
    vi.useRealTimers();
  });
}

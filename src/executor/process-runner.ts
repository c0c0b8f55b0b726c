/**
 * Runs one assigned process: finds the function, parses its arguments, calls the handler with a context, and
 * reports the outcome to Colonies exactly once (close with `out`, or fail with a short message).
 */
import type { Logger } from "pino";
import type { ColoniesApi } from "../colonies/client.js";
import { ColoniesError } from "../colonies/errors.js";
import { type Process, ProcessState } from "../colonies/types.js";
import { parseArguments } from "./args.js";
import type { ExecutorMetrics, Outcome } from "./metrics.js";
import { type FunctionDef, type ProcessContext, ProcessError } from "./types.js";

/** Why a running process was aborted; becomes part of its failure message. */
export class ShutdownAbort extends Error {
  override name = "ShutdownAbort";
}

/** The handler was stopped because Colonies re-queued its process (another executor runs it now). */
export class ReassignedAbort extends ShutdownAbort {
  override name = "ReassignedAbort";
}

export interface RunnerDeps {
  client: ColoniesApi;
  prvKey: string;
  functions: ReadonlyMap<string, FunctionDef>;
  metrics: ExecutorMetrics;
  logger: Logger;
  /** What a handler does once Colonies gave its process to another executor (ExecutorInstance.onReassigned). */
  onReassigned: "stop" | "finish";
  /** Aborted when reports still waiting for the server must give up (the executor is going away). */
  reportsGiveUp?: AbortSignal;
  /** ProcessContext.waiting: the runtime frees the process's slot while it waits. */
  waiting?<T>(blocked: Promise<T>): Promise<T>;
}

/** Answers of the server that are errors (5xx) a report is retried after, at most. */
const REPORT_ATTEMPTS = 5;
/** The longest wait between two attempts of a report while the server cannot be reached. */
const REPORT_BACKOFF_MAX_MS = 10_000;

function firstLine(text: string): string {
  const line = text.split("\n").find((l) => l.trim() !== "") ?? text;
  return line.length > 500 ? `${line.slice(0, 497)}...` : line;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * A process's submission time (RFC 3339 as the Colonies server writes it, e.g. "2026-12-06T05:51:01.123456789Z")
 * in nanoseconds since the epoch, the unit of Colonies' priority time; undefined when it is not such a time. The
 * whole seconds go through Date (exact), the fraction never does (Date keeps milliseconds only); the sum is exact
 * as a bigint and then rounded once to a number, which keeps the order of any two times a microsecond apart (the
 * server's PostgreSQL keeps microseconds).
 */
export function submissionOrder(time: string | undefined): number | undefined {
  const match = RFC3339.exec(time ?? "");
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second, fraction = "", zulu, sign, offsetHours, offsetMinutes] =
    match as unknown as (string | undefined)[];
  const date = new Date(0);
  date.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  date.setUTCHours(Number(hour), Number(minute), Number(second), 0);
  // Date rolls an impossible date over (February 30th is March 2nd): that is not a time the server wrote.
  if (
    date.getUTCMonth() !== Number(month) - 1 ||
    date.getUTCDate() !== Number(day) ||
    date.getUTCHours() !== Number(hour) ||
    date.getUTCMinutes() !== Number(minute) ||
    date.getUTCSeconds() !== Number(second)
  ) {
    return undefined;
  }
  if (!zulu && (Number(offsetHours) > 23 || Number(offsetMinutes) > 59)) return undefined;
  const offsetSeconds = zulu
    ? 0
    : (sign === "-" ? -1 : 1) * (Number(offsetHours) * 3600 + Number(offsetMinutes) * 60);
  const seconds = BigInt(date.getTime() / 1000 - offsetSeconds);
  return Number(seconds * 1_000_000_000n + BigInt(fraction.padEnd(9, "0")));
}

/** The message a failed process carries: short and specific; details go to the process log. */
export function failureMessage(error: unknown, signal: AbortSignal): string {
  if (signal.aborted && signal.reason instanceof ShutdownAbort) return signal.reason.message;
  if (error instanceof ProcessError) return error.message;
  if (error instanceof Error) return firstLine(error.message) || error.name;
  return firstLine(String(error));
}

/**
 * Runs a process's handler; resolves when the handler is done, with `reported`, which settles once Colonies
 * has the outcome (never rejects).
 */
export async function runProcess(
  deps: RunnerDeps,
  process: Process,
  signal: AbortSignal,
): Promise<{ reported: Promise<Outcome> }> {
  const { client, prvKey, metrics } = deps;
  const funcName = process.spec?.funcname ?? "";
  const logger = deps.logger.child({ processId: process.processid, function: funcName });
  const started = performance.now();
  metrics.processStarted();

  // Colonies re-queues a process whose maxexectime ran out: from then on it is another executor's, and this
  // handler stops instead of doing the work a second time.
  const watch = watchAssignment(deps, process, signal, logger);
  const ctx: ProcessContext = {
    processId: process.processid,
    funcName,
    order: submissionOrder(process.submissiontime),
    signal: watch.signal,
    logger,
    log: async (message) => {
      try {
        await client.addLog(process.processid, message, prvKey);
      } catch (error) {
        logger.warn({ err: error }, "could not add to the process log");
      }
    },
    ...(deps.waiting ? { waiting: deps.waiting } : {}),
  };

  // The handler's result, then its one report. The report is returned unawaited so that the slot can ask for
  // its next process while the close is on the wire (the process itself has finished).
  let outcome: Outcome;
  let send: () => Promise<unknown>;
  try {
    const fn = deps.functions.get(funcName);
    if (!fn) {
      throw new ProcessError(
        `Unsupported function: ${funcName || "(none)"}; this executor offers ${[...deps.functions.keys()].join(", ")}`,
      );
    }
    const args = parseArguments(fn, process.spec.args, process.spec.kwargs);
    logger.info({ args }, "process started");
    const out = await untilAborted(fn.handler(args, ctx), watch.signal);
    if (!Array.isArray(out)) throw new Error(`${funcName} returned ${typeof out}, not a list of outputs`);
    outcome = "success";
    send = () => client.closeSuccessful(process.processid, out, prvKey);
  } catch (error) {
    const message = failureMessage(error, watch.signal);
    outcome = watch.signal.aborted ? "aborted" : "failed";
    if (error instanceof ProcessError || watch.signal.aborted)
      logger.warn({ reason: message }, "process failed");
    else logger.error({ err: error }, "process failed");
    if (error instanceof ProcessError && error.details) await ctx.log(error.details);
    else if (error instanceof Error && !(error instanceof ProcessError) && error.message.includes("\n")) {
      await ctx.log(error.message);
    }
    send = () => client.closeFailed(process.processid, [message], prvKey);
  } finally {
    watch.stop();
  }
  const reported = report(
    { client, prvKey, logger, process, giveUp: deps.reportsGiveUp },
    watch.reassigned ? undefined : send,
  ).then((delivered) => {
    if (!delivered) metrics.reportUndelivered();
    const seconds = (performance.now() - started) / 1000;
    metrics.processDone(funcName, outcome, seconds);
    logger.info({ outcome, durationMs: Math.round(seconds * 1000) }, "process done");
    return outcome;
  });
  return { reported };
}

/** How often a process past its maxexectime is looked at in Colonies. */
const ASSIGNMENT_CHECK_MS = 5_000;

/**
 * Aborts the handler's signal (besides the executor's own) once Colonies no longer has the process running on
 * this executor. Only a process with a maxexectime can be re-queued, and only after it: the first look is then.
 */
function watchAssignment(deps: RunnerDeps, process: Process, signal: AbortSignal, logger: Logger) {
  const maxExecSeconds = process.spec?.maxexectime ?? -1;
  const lost = new AbortController();
  const state = { reassigned: false, stopped: false };
  let timer: NodeJS.Timeout | undefined;
  const look = async () => {
    try {
      const now = await deps.client.getProcess(process.processid, deps.prvKey, { signal });
      if (now.state !== ProcessState.RUNNING || now.assignedexecutorid !== process.assignedexecutorid) {
        state.reassigned = true;
        logger.warn(
          { state: now.state, retries: now.retries },
          "Colonies gave the process to another executor",
        );
        lost.abort(
          new ReassignedAbort(
            `Colonies re-queued the process (its maxexectime of ${maxExecSeconds} s ran out); another executor runs it`,
          ),
        );
        return;
      }
    } catch (error) {
      if (signal.aborted) return;
      logger.debug({ err: error }, "could not look at the process's assignment");
    }
    if (state.stopped) return;
    timer = setTimeout(look, ASSIGNMENT_CHECK_MS);
    timer.unref();
  };
  if (maxExecSeconds > 0 && deps.onReassigned === "stop") {
    timer = setTimeout(look, maxExecSeconds * 1000);
    timer.unref();
  }
  return {
    signal: AbortSignal.any([signal, lost.signal]),
    get reassigned() {
      return state.reassigned;
    },
    stop: () => {
      state.stopped = true;
      clearTimeout(timer);
    },
  };
}

/** How long an aborted handler gets to clean up (kill children, remove partial output) before it is failed. */
const ABORT_CLEANUP_MS = 5_000;

/**
 * Settles with the handler, or, once the signal is aborted, with the abort reason after the handler settled or
 * ABORT_CLEANUP_MS passed: a handler that ignores its signal cannot hold up shutdown.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      timer = setTimeout(() => reject(signal.reason), ABORT_CLEANUP_MS);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    });
  });
}

/** What a report needs besides the close or fail it sends. */
interface Reporter {
  client: ColoniesApi;
  prvKey: string;
  logger: Logger;
  process: Process;
  giveUp?: AbortSignal;
}

/**
 * Sends the one close/fail of a process (none when `send` is undefined: the process is another executor's now).
 * While the server cannot be reached (down, restarting) it is retried until the server answers, or until the
 * executor gives up on shutdown; an error the server answers with is retried REPORT_ATTEMPTS times when it is a
 * 5xx, and is final otherwise (e.g. 403: the process was re-queued to someone else). Before each retry the
 * process is read: an attempt whose answer was lost (the server died after closing it) closed it already, and
 * is not sent twice. Never throws: resolves whether the report was delivered; one that was not is logged.
 */
async function report(reporter: Reporter, send: (() => Promise<unknown>) | undefined): Promise<boolean> {
  const { logger, giveUp } = reporter;
  if (!send) return true;
  let answered = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      if (attempt > 1 && (await closedByUs(reporter))) {
        logger.info({ attempt }, "an earlier attempt had closed the process; not sending it again");
        return true;
      }
      await send();
      return true;
    } catch (error) {
      const unreachable = error instanceof ColoniesError && error.unreachable;
      const serverError = error instanceof ColoniesError && error.status >= 500;
      if (serverError) answered++;
      if ((!unreachable && !serverError) || answered >= REPORT_ATTEMPTS || giveUp?.aborted) {
        logger.error({ err: error, attempt }, "could not report the process outcome to Colonies");
        return false;
      }
      logger.warn(
        { err: error instanceof Error ? error.message : String(error), attempt },
        "could not report the process outcome yet; retrying",
      );
      await sleep(Math.min(REPORT_BACKOFF_MAX_MS, 200 * 2 ** attempt), giveUp);
    }
  }
}

/** Whether the process is closed already, by this executor (throws when the server cannot say). */
async function closedByUs({ client, prvKey, process }: Reporter): Promise<boolean> {
  const now = await client.getProcess(process.processid, prvKey);
  return (
    (now.state === ProcessState.SUCCESS || now.state === ProcessState.FAILED) &&
    now.assignedexecutorid === process.assignedexecutorid
  );
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done, { once: true });
  });
}

/** The sleep executor: `sleep(milliseconds)`, for tests and load generation. */
import { EnvReader } from "../executor/env.js";
import { type ExecutorModule, ProcessError } from "../executor/types.js";

const DEFAULT_MAX_MS = 3_600_000;

function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    if (ms === 0) return resolve(); // a timer would add a millisecond or more
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason ?? new ProcessError("sleep aborted"));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** setTimeout's largest delay (about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

export const sleepExecutor: ExecutorModule = {
  kind: "sleep",
  description: "sleeps for the given number of milliseconds; for tests and load generation",
  env: [
    {
      name: "SLEEP_MAX_MS",
      description: "largest accepted sleep, in milliseconds",
      default: `${DEFAULT_MAX_MS}`,
    },
  ],
  async create(env) {
    const e = new EnvReader(env);
    const maxMs = e.int("SLEEP_MAX_MS", 0, MAX_TIMER_MS) ?? DEFAULT_MAX_MS;
    e.check("sleep executor configuration");
    return {
      functions: [
        {
          name: "sleep",
          description: "Sleep for a number of milliseconds, then close with {milliseconds}",
          args: [
            {
              name: "milliseconds",
              type: "int",
              min: 0,
              max: maxMs,
              description: `how long to sleep, 0..${maxMs} ms (a decimal string or a number)`,
            },
          ],
          async handler(args, ctx) {
            const ms = args.milliseconds as number;
            await sleepFor(ms, ctx.signal);
            return [{ milliseconds: ms }];
          },
        },
      ],
    };
  },
};

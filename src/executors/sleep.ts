/** The sleep executor: `sleep(milliseconds)`, for tests and load generation. */
import { z } from "zod";
import { ConfigError, type ExecutorModule, ProcessError } from "../executor/types.js";

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

const maxSchema = z
  .string()
  .regex(/^\d+$/, "SLEEP_MAX_MS must be a whole number of milliseconds")
  .transform(Number)
  .refine((n) => n <= 2_147_483_647, "SLEEP_MAX_MS must be at most 2147483647 (about 24.8 days)");

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
    const raw = env.SLEEP_MAX_MS?.trim();
    const parsed = raw ? maxSchema.safeParse(raw) : null;
    if (parsed && !parsed.success)
      throw new ConfigError(parsed.error.issues.map((i) => i.message).join("; "));
    const maxMs = parsed?.data ?? DEFAULT_MAX_MS;
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

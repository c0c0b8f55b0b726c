/** Settles like `promise`, or rejects with the signal's reason as soon as the signal aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * A signal that aborts after `ms` (with a TimeoutError, as AbortSignal.timeout's does) or with any of `signals`.
 * Its timer is an ordinary one: AbortSignal.timeout's can be collected before it fires when only AbortSignal.any
 * refers to it (Node 20 lost all of 200 such timers in a test; Node 24 none).
 */
export function deadlineSignal(ms: number, ...signals: (AbortSignal | undefined)[]): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException(`The operation timed out after ${ms} ms`, "TimeoutError")),
    Math.max(1, Math.round(ms)),
  );
  timer.unref();
  const sources = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  return sources.length > 0 ? AbortSignal.any([controller.signal, ...sources]) : controller.signal;
}

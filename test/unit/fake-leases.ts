/**
 * Leases in memory with the apiserver's optimistic concurrency (a replace or a delete with a stale resourceVersion
 * is a 409), for the coordinator's unit tests; and the faults of a slow apiserver: requests that hang until their
 * caller's deadline, and writes that are stored but whose answer never arrives.
 */
import { ApiException, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";

type Options = { middleware?: { pre(context: unknown): unknown }[] } | undefined;

/** The AbortSignal a call was given (lease-store.ts passes it through a middleware, as kube-api.ts does). */
function signalOf(options: Options): AbortSignal | undefined {
  let signal: AbortSignal | undefined;
  for (const middleware of options?.middleware ?? []) {
    middleware.pre({ setSignal: (s: AbortSignal) => (signal = s) });
  }
  return signal;
}

export class FakeLeases {
  private readonly leases = new Map<string, V1Lease>();
  private version = 0;
  /** Every request waits until its signal aborts (the apiserver is paused). */
  hang = false;
  /** Writes are stored, but their answer never arrives (it waits until the signal aborts). */
  loseAnswers = false;
  /** Every request hangs and does not even notice its signal (an HTTP layer that drops the abort). */
  deaf = false;
  /** The next this many requests fail with 503 (the apiserver is overloaded). */
  failing = 0;
  /** Runs before a request is served: another party's write may land there. */
  before?: (verb: string, name: string) => void;
  /** Requests in flight now, and the most at once, per Lease name. */
  readonly inFlight = new Map<string, number>();
  readonly mostInFlight = new Map<string, number>();
  /** Every request: verb and Lease name. */
  readonly requests: string[] = [];

  get(name: string): V1Lease | undefined {
    return this.leases.get(name);
  }

  names(): string[] {
    return [...this.leases.keys()];
  }

  /** Writes a Lease as another party would (e.g. a dead replica's leftovers). */
  put(lease: V1Lease): V1Lease {
    return this.store(lease);
  }

  api(): CoordinationV1Api {
    const call = async <T>(verb: string, name: string, options: Options, work: () => T): Promise<T> => {
      this.requests.push(`${verb} ${name}`);
      const signal = signalOf(options);
      const now = (this.inFlight.get(name) ?? 0) + 1;
      this.inFlight.set(name, now);
      this.mostInFlight.set(name, Math.max(now, this.mostInFlight.get(name) ?? 0));
      try {
        if (this.deaf) await new Promise<never>(() => {});
        if (this.hang) await aborted(signal);
        if (this.failing > 0) {
          this.failing--;
          throw fail(503);
        }
        this.before?.(verb, name);
        const result = work();
        if (this.loseAnswers && verb !== "read") await aborted(signal);
        return result;
      } finally {
        this.inFlight.set(name, (this.inFlight.get(name) ?? 1) - 1);
      }
    };
    return {
      readNamespacedLease: ({ name }: { name: string }, options: Options) =>
        call("read", name, options, () => {
          const lease = this.leases.get(name);
          if (!lease) throw fail(404);
          return structuredClone(lease);
        }),
      createNamespacedLease: ({ body }: { body: V1Lease }, options: Options) =>
        call("create", body.metadata?.name as string, options, () => {
          if (this.leases.has(body.metadata?.name as string)) throw fail(409);
          return this.store(body);
        }),
      replaceNamespacedLease: ({ name, body }: { name: string; body: V1Lease }, options: Options) =>
        call("replace", name, options, () => {
          const lease = this.leases.get(name);
          if (!lease) throw fail(404);
          if (lease.metadata?.resourceVersion !== body.metadata?.resourceVersion) throw fail(409);
          return this.store(body);
        }),
      deleteNamespacedLease: (
        { name, body }: { name: string; body?: { preconditions?: { resourceVersion?: string } } },
        options: Options,
      ) =>
        call("delete", name, options, () => {
          const lease = this.leases.get(name);
          if (!lease) throw fail(404);
          const expected = body?.preconditions?.resourceVersion;
          if (expected && lease.metadata?.resourceVersion !== expected) throw fail(409);
          this.leases.delete(name);
          return {};
        }),
    } as unknown as CoordinationV1Api;
  }

  private store(body: V1Lease): V1Lease {
    const lease = structuredClone(body);
    lease.metadata = { ...lease.metadata, resourceVersion: String(++this.version) };
    this.leases.set(lease.metadata.name as string, lease);
    return structuredClone(lease);
  }
}

function fail(code: number): ApiException<unknown> {
  return new ApiException(code, `HTTP ${code}`, {}, {});
}

/** Waits until the signal aborts, then rejects as fetch does. */
function aborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (!signal) return;
    const abort = () => reject(signal.reason ?? new DOMException("aborted", "AbortError"));
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
  });
}

/**
 * The Lease API as the coordinator uses it, in one place: read, create, replace with the read resourceVersion
 * (optimistic concurrency) and delete, each with a deadline. The apiserver's answers that mean "someone else
 * changed it first, read it again" (409 on a write, 404 on a replace) are values here, not errors.
 */
import type { ConfigurationOptions, CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { ApiException } from "@kubernetes/client-node";
import { abortable, deadlineSignal } from "../atoms/abort.js";
import { isApiStatus, withSignal } from "../atoms/kube-api.js";

export interface LeaseStoreOptions {
  api: CoordinationV1Api;
  namespace: string;
  /** Deadline of one request unless the caller gives a shorter one: a hung apiserver must not hang a caller. */
  timeoutMs?: number;
}

export class LeaseStore {
  private readonly timeoutMs: number;

  constructor(private readonly options: LeaseStoreOptions) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  get namespace(): string {
    return this.options.namespace;
  }

  /** The Lease, or undefined when there is none. */
  async read(name: string, signal?: AbortSignal): Promise<V1Lease | undefined> {
    try {
      return await this.within(signal, (options) =>
        this.options.api.readNamespacedLease({ name, namespace: this.namespace }, options),
      );
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** Creates it; undefined when a Lease of that name exists already (someone else created it first). */
  async create(body: V1Lease, signal?: AbortSignal): Promise<V1Lease | undefined> {
    try {
      return await this.within(signal, (options) =>
        this.options.api.createNamespacedLease({ namespace: this.namespace, body }, options),
      );
    } catch (error) {
      if (isApiStatus(error, 409)) return undefined;
      throw error;
    }
  }

  /**
   * Replaces it if it is still at the body's resourceVersion; undefined when it changed (409) or was deleted (404)
   * since it was read: read it again.
   */
  async replace(body: V1Lease, signal?: AbortSignal): Promise<V1Lease | undefined> {
    try {
      return await this.within(signal, (options) =>
        this.options.api.replaceNamespacedLease(
          { name: body.metadata?.name as string, namespace: this.namespace, body },
          options,
        ),
      );
    } catch (error) {
      if (isApiStatus(error, 409) || isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** A replace of a Lease that was read, a create of one that was not (no resourceVersion). */
  write(body: V1Lease, signal?: AbortSignal): Promise<V1Lease | undefined> {
    return body.metadata?.resourceVersion ? this.replace(body, signal) : this.create(body, signal);
  }

  /**
   * Deletes it; with `resourceVersion`, only if it is still at that version. False when it changed since (409);
   * true when it is gone (a Lease already gone counts as deleted).
   */
  async remove(name: string, resourceVersion?: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.within(signal, (options) =>
        this.options.api.deleteNamespacedLease(
          {
            name,
            namespace: this.namespace,
            ...(resourceVersion ? { body: { preconditions: { resourceVersion } } } : {}),
          },
          options,
        ),
      );
      return true;
    } catch (error) {
      if (isApiStatus(error, 404)) return true;
      if (isApiStatus(error, 409)) return false;
      throw error;
    }
  }

  /**
   * A request within its deadline (or until `signal` aborts). Settled by the deadline itself, not only by the HTTP
   * layer noticing it: a replica's heartbeat must go on even if a request never answers nor stops.
   */
  private within<T>(
    signal: AbortSignal | undefined,
    request: (options: ConfigurationOptions) => Promise<T>,
  ): Promise<T> {
    const deadline = deadlineSignal(this.timeoutMs, signal);
    return abortable(request(withSignal(deadline)), deadline);
  }
}

/**
 * Whether a failed request may succeed when tried again: the apiserver did not answer in time or could not be
 * reached, or answered 429 or 5xx. A refusal (403, 422...) is not: it would fail the same way again.
 */
export function transient(error: unknown): boolean {
  if (error instanceof ApiException) return error.code === 429 || error.code >= 500;
  if (!(error instanceof Error)) return false;
  // A deadline or an abort, undici's "fetch failed" (its cause says why), or a socket error.
  const code = (error as { code?: unknown }).code;
  return (
    error.name === "AbortError" ||
    error.name === "TimeoutError" ||
    (error instanceof TypeError && error.message === "fetch failed") ||
    (typeof code === "string" && /^E[A-Z]+$/.test(code))
  );
}

/** A JSON annotation of a Lease when it has the expected shape; undefined otherwise (it then counts as absent). */
export function annotation<T>(
  lease: V1Lease | undefined,
  key: string,
  valid: (value: T) => boolean,
): T | undefined {
  const text = lease?.metadata?.annotations?.[key];
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as T;
    return valid(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

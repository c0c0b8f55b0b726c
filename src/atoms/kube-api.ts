/**
 * The edges of @kubernetes/client-node 2.x calls: passing an AbortSignal to a request, and classifying the
 * errors once into the engine's terms.
 */
import {
  ApiException,
  type ConfigurationOptions,
  Observable,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
} from "@kubernetes/client-node";
import { AtomAlreadyExistsError, AtomNotFoundError } from "./engine.js";

/** Per-call options that cancel the HTTP request when the signal aborts (the generated API has no signal parameter). */
export function withSignal(signal: AbortSignal): ConfigurationOptions {
  const setSignal: ObservableMiddleware = {
    pre: (context: RequestContext) => {
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
  };
  // "append" keeps the client's own middleware (its User-Agent header).
  return { middleware: [setSignal], middlewareMergeStrategy: "append" };
}

/** An error of the Kubernetes API that is neither "not found" nor "already exists". */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  constructor(
    message: string,
    /** HTTP status of the API's answer. */
    readonly status: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isApiStatus(error: unknown, status: number): boolean {
  return error instanceof ApiException && error.code === status;
}

/**
 * The error to throw for a failed call about pod `id`: the caller's abort reason when it was cancelled,
 * {@link AtomNotFoundError} for 404, {@link AtomAlreadyExistsError} for 409, otherwise as {@link kubeApiError}.
 */
export function classifyKubeError(
  error: unknown,
  context: { engine: string; action: string; id: string; signal: AbortSignal },
): Error {
  if (!context.signal.aborted && isApiStatus(error, 404))
    return new AtomNotFoundError(context.engine, context.id);
  if (!context.signal.aborted && isApiStatus(error, 409))
    return new AtomAlreadyExistsError(context.engine, context.id);
  return kubeApiError(error, `${context.engine}: ${context.action} pod "${context.id}"`, context.signal);
}

/**
 * The caller's abort reason when it was cancelled; for an API error, a {@link KubeApiError} carrying the API's own
 * one-line message instead of the client's multi-line dump; any other error as it is.
 */
export function kubeApiError(error: unknown, what: string, signal: AbortSignal): Error {
  if (signal.aborted) return signal.reason as Error;
  if (!(error instanceof ApiException)) return error instanceof Error ? error : new Error(String(error));
  return new KubeApiError(`${what}: ${statusMessage(error)}`, error.code, { cause: error });
}

/** The `message` of the V1Status the API answered with, which the client keeps as JSON text. */
export function statusMessage(error: ApiException<unknown>): string {
  const body = error.body;
  try {
    const status: unknown = typeof body === "string" ? JSON.parse(body) : body;
    if (status && typeof status === "object" && "message" in status && typeof status.message === "string") {
      return status.message;
    }
  } catch {
    // Not JSON: fall through to the status code.
  }
  return `HTTP ${error.code}`;
}

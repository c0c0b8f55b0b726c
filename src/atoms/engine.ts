/**
 * Terminology (the atom model of seed 002, see atom-model.md)
 * - atom: one thing that runs a job or an executor: a Kubernetes pod, a local child process.
 * - engine: what creates and controls atoms of one kind: a namespace of a Kubernetes cluster, this machine's
 *   processes. Every call takes an AbortSignal that cancels the call (never the atom itself).
 * - state: where an atom is in its life; result: how it ended. A result is known once the atom is stopped
 *   (or deleted), or earlier when it can never start.
 * - container: a part of an atom with its own status: a pod's containers; a process is one container.
 * - label: a key/value pair on an atom; {@link LABEL} marks the atoms this project manages.
 */
import type { Readable } from "node:stream";

/** The seed's State values, in lifecycle order. */
export const STATES = [
  "created",
  "running",
  "stopping",
  "stopped",
  "deleting",
  "deleted",
  "invalid",
] as const;
export type AtomState = (typeof STATES)[number];

/** The seed's Result values. `unknown` is treated as a failure by whoever reads it. */
export const RESULTS = [
  "success",
  "failure",
  "startup_failure",
  "resource_failure",
  "killed",
  "terminated",
  "unknown",
] as const;
export type AtomResult = (typeof RESULTS)[number];

/**
 * Label key marking managed atoms: the seed's `cloud.caesium`, moved under this project's DNS prefix so that no
 * other tool's labels collide with it (a valid Kubernetes label key: prefix `colonyos.io`, name `atom`). Its presence is what `list` selects; the
 * value is free (`create` sets "true" unless the caller gives one). The k8s executor's pods carry it.
 */
export const LABEL = "colonyos.io/atom";

/** Name of the single container of atoms an engine creates itself (a created pod's, a process's). */
export const MAIN_CONTAINER = "main";

export interface AtomContainer {
  name: string;
  /** created (waiting or no status yet), running, stopped (terminated). */
  state: AtomState;
  result?: AtomResult;
  exitCode?: number;
  /** e.g. OOMKilled, ImagePullBackOff, Error, SIGKILL, ENOENT. */
  reason?: string;
  message?: string;
  restarts: number;
}

/** A snapshot of an atom: plain data, safe to serialise as JSON. */
export interface Atom {
  /** The pod name, the process name. */
  id: string;
  /** Name of the engine that reported it, e.g. "kubernetes" or "process". */
  engine: string;
  state: AtomState;
  /** Undefined until known. */
  result?: AtomResult;
  /** Exit code of the container that decided the result. */
  exitCode?: number;
  /** Why the atom has its result (pod reason such as Evicted, or the deciding container's reason). */
  reason?: string;
  message?: string;
  createdAt?: Date;
  startedAt?: Date;
  stoppedAt?: Date;
  labels: Record<string, string>;
  containers: AtomContainer[];
}

export interface CallOptions {
  signal: AbortSignal;
}

export interface ListOptions extends CallOptions {
  /** Only atoms carrying all of these labels (equality), on top of {@link LABEL}. */
  labels?: Record<string, string>;
}

export interface StopOptions extends CallOptions {
  /** Kill at once, without a grace period. */
  force?: boolean;
  /** Time between the polite stop (SIGTERM) and the kill; the engine's default when absent. */
  gracePeriodMs?: number;
}

export interface LogsOptions extends CallOptions {
  /** Container to read; the first one when absent. */
  container?: string;
  /** Keep the stream open and append new lines until the atom stops or the signal aborts. */
  follow?: boolean;
  /** Only lines written at or after this time. */
  since?: Date;
  /** Only the last N lines (N >= 1) of what exists when the call is made. */
  tail?: number;
  /** Prefix each line with its RFC 3339 time. */
  timestamps?: boolean;
  /** Bytes the engine should send at most (a bound for the source; readers still cap what they keep). */
  limitBytes?: number;
}

/**
 * Creates and controls atoms. `Spec` is what `create` needs, which differs by engine (an image for a pod,
 * a command for a process).
 */
export interface Engine<Spec> {
  readonly name: string;
  /** Throws {@link AtomNotFoundError} when no managed atom has this id. */
  get(id: string, options: CallOptions): Promise<Atom>;
  list(options: ListOptions): Promise<Atom[]>;
  /** Throws {@link AtomAlreadyExistsError} when the id is taken. */
  create(spec: Spec, options: CallOptions): Promise<Atom>;
  /** Starts stopping the atom and returns; stopping an atom that is already gone succeeds. Use `wait` to know when it is done. */
  stop(id: string, options: StopOptions): Promise<void>;
  /** A byte stream of log lines; destroying it releases the underlying request. */
  logs(id: string, options: LogsOptions): Promise<Readable>;
  /** Resolves once the atom is stopped or deleted; rejects with the signal's reason when cancelled. */
  wait(id: string, options: CallOptions): Promise<Atom>;
}

export class AtomNotFoundError extends Error {
  override readonly name = "AtomNotFoundError";
  constructor(
    readonly engine: string,
    readonly id: string,
  ) {
    super(`${engine}: no managed atom "${id}"`);
  }
}

export class AtomAlreadyExistsError extends Error {
  override readonly name = "AtomAlreadyExistsError";
  constructor(
    readonly engine: string,
    readonly id: string,
  ) {
    super(`${engine}: atom "${id}" already exists`);
  }
}

/** A state after which nothing will run any more. */
export function isFinished(state: AtomState): boolean {
  return state === "stopped" || state === "deleted";
}

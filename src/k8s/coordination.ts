/**
 * Turns on a deployment name, shared by every k8s-executor replica. An operation takes a ticket; the name's turn
 * goes to the oldest waiting ticket (Colonies' priority time: submission order), whichever replica holds it.
 * Each name carries a record of what was last applied to it, so that
 * - a mutation older than the applied one is superseded instead of rolling the state back (stacks.ts);
 * - a waiting mutation that a later waiting one makes pointless is dropped unrun (coalescing);
 * - a replica knows whether its cached outputs are still the stack's (the version changes with every update);
 * - a turn taken from a holder proven gone says so, and the interrupted update is cleaned up first.
 * Two implementations: {@link LocalCoordinator} for a single writer (one process owns the state backend), and
 * `LeaseCoordinator` (Kubernetes Leases) for replicas sharing a backend.
 */
import { KeyedQueue } from "./queue.js";
import { SupersededError } from "./stack-errors.js";

/**
 * An operation waiting for a name's turn. `effect` says how it relates to the others:
 * - "replace" (deploy, undeploy): a whole desired state; supersedes every earlier mutation;
 * - "pods" (scale, the autoscaler's scales): the number of pods; supersedes earlier scales and reconciles;
 * - "converge" (reconcile): puts the recorded spec back; supersedes nothing, any later mutation supersedes it;
 * - "policy" (autoscale): changes what the stack keeps besides the spec; supersedes nothing, is never superseded;
 * - "none" (previews, reads): changes nothing.
 */
export interface Ticket {
  /** Colonies process id (empty for the executor's own operations, e.g. the autoscaler's). */
  process: string;
  fn: string;
  /** Colonies' priority time: the operation's place in submission order. */
  order: number;
  effect: "replace" | "pods" | "converge" | "policy" | "none";
}

/** Effects that state what a name should be: the record keeps the last one applied. */
export function setsDesiredState(effect: Ticket["effect"]): boolean {
  return effect === "replace" || effect === "pods";
}

/** The mutating operation last applied to a name. */
export interface AppliedOperation {
  process: string;
  fn: string;
  order: number;
  /** When it was applied (ISO time). */
  at: string;
}

export interface NameRecord {
  /** Changes with every update attempt on the name's stack, whoever made it. */
  version: number;
  applied?: AppliedOperation;
}

export interface NameTurn {
  readonly record: NameRecord;
  /** The previous holder was proven gone without ending its turn: its update may have been cut off. */
  readonly takenOver: boolean;
  /** Aborts when this replica can no longer prove it is alive, so that the work stops before a takeover. */
  readonly lost: AbortSignal;
  /** Ends the turn; `next` replaces the record when the stack was changed. */
  release(next?: NameRecord): Promise<void>;
}

/** What each name holds in reserve (executor containers) while its update runs, over every replica. */
export type Reservations = Map<string, number>;

export interface NameCoordinator {
  /** What coordinates the turns, for logs ("local", "lease"). */
  readonly kind: string;
  /**
   * Runs `check` with the reservations every live replica holds, then reserves `amount` for `name`, as one step
   * across replicas (so that two replicas cannot both pass a limit that only one fits); returns the release.
   */
  reserve(
    name: string,
    amount: number,
    check: (reserved: Reservations) => Promise<void>,
  ): Promise<() => Promise<void>>;
  /**
   * Waits for the name's turn. Rejects with SupersededError when a later waiting ticket supersedes this one,
   * and with the signal's reason when it aborts first.
   */
  acquire(name: string, ticket: Ticket, signal: AbortSignal): Promise<NameTurn>;
  /**
   * Whether this replica leads `role` (e.g. the autoscaler): exactly one live replica does at a time; it keeps
   * the role until it is gone or closes. Asked again before each round of the role's work.
   */
  leads(role: string): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Whether the name is deployed as far as its record says: its last applied operation was not an undeploy. A name
 * without a record (never applied through this coordinator) counts as not deployed.
 */
export function deployed(record: NameRecord | undefined): boolean {
  return !!record?.applied && record.applied.fn !== "undeploy";
}

/**
 * Whether the waiting `earlier` operation is pointless once `later` runs (desired states). Only over a name that
 * is deployed: on any other name the later call may well fail (an unknown name, someone else's objects, a budget
 * a first deploy does not fit), and a call must not be closed as superseded by one that then fails; the calls on
 * such a name take their turns instead, each with its own outcome.
 */
export function supersedes(later: Ticket, earlier: Ticket, record: NameRecord | undefined): boolean {
  if (later.order <= earlier.order || !setsDesiredState(later.effect)) return false;
  if (earlier.effect === "none" || earlier.effect === "policy" || !deployed(record)) return false;
  return later.effect === "replace" || earlier.effect !== "replace";
}

/** How long an idle name waits for simultaneous arrivals, so that they take turns in submission order. */
export const GATHER_MS = 100;

/**
 * One process owns the state backend (a file backend on a ReadWriteOnce volume): an in-process queue per name
 * orders the turns, and the records live in memory.
 */
export class LocalCoordinator implements NameCoordinator {
  readonly kind = "local";
  private readonly records = new Map<string, NameRecord>();
  private readonly reserved: Reservations = new Map();
  private checking: Promise<unknown> = Promise.resolve();
  private readonly never = new AbortController().signal;
  private readonly queue = new KeyedQueue<Ticket & { name: string }>({
    gatherMs: GATHER_MS,
    supersede: (earlier, later) =>
      supersedes(later, earlier, this.records.get(earlier.name))
        ? new SupersededError(earlier.name, later, "queued")
        : undefined,
  });

  acquire(name: string, ticket: Ticket, signal: AbortSignal): Promise<NameTurn> {
    return new Promise<NameTurn>((resolve, reject) => {
      const aborted = () => reject(signal.reason);
      signal.addEventListener("abort", aborted, { once: true });
      // The queue's operation is the turn itself: it ends when the turn is released.
      this.queue
        .run(
          name,
          () =>
            new Promise<void>((ended) => {
              signal.removeEventListener("abort", aborted);
              if (signal.aborted) return ended();
              resolve({
                record: this.records.get(name) ?? { version: 0 },
                takenOver: false,
                lost: this.never,
                release: async (next) => {
                  if (next) this.records.set(name, next);
                  ended();
                },
              });
            }),
          ticket.order,
          { ...ticket, name },
        )
        .catch((error: unknown) => {
          signal.removeEventListener("abort", aborted);
          reject(error);
        });
    });
  }

  reserve(name: string, amount: number, check: (reserved: Reservations) => Promise<void>) {
    const step = this.checking.then(async () => {
      await check(new Map(this.reserved));
      this.reserved.set(name, Math.max(amount, this.reserved.get(name) ?? 0));
      return async () => {
        this.reserved.delete(name);
      };
    });
    this.checking = step.catch(() => undefined);
    return step;
  }

  /** The only writer leads every role. */
  async leads(_role: string): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}
}

/**
 * Turns on a deployment name, shared by every k8s-executor replica. An operation puts a ticket down; the name's
 * turn goes to the first ticket in order, whichever replica holds it. The order is the Colonies server's
 * submission time of the call (no caller chooses it, unlike `priority`); the executor's own operations (the
 * autoscaler, the drift check) need no clock: their ticket is placed just after everything the name already
 * holds. Each name carries a record of what was last applied to it, so that
 * - a mutation older than the applied one is superseded instead of rolling the state back;
 * - a waiting mutation that a later waiting one would make pointless waits for that one's outcome (conditional
 *   coalescing): superseded once the later one was applied, its own turn after it otherwise;
 * - a replica knows whether its cached outputs are still the stack's (the version changes with every update);
 * - a turn taken from a holder proven gone says so, and the interrupted update is cleaned up first.
 * Two implementations: {@link LocalCoordinator} for a single writer (one process owns the state backend), and
 * `LeaseCoordinator` (Kubernetes Leases) for replicas sharing a backend.
 */
import { assertLeaderRole } from "./lease-names.js";
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
  /**
   * The operation's place among the name's operations: the Colonies server's submission time of its process in
   * nanoseconds since the epoch (records written before this order existed hold Colonies' priority time, the
   * same value for the default priority 0); for the executor's own operations, the order they were placed at.
   */
  order: number;
  effect: "replace" | "pods" | "converge" | "policy" | "none";
}

/** A ticket as an operation asks for it: without an order, it is placed after everything the name holds. */
export type TicketRequest = Omit<Ticket, "order"> & { order?: number };

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
  /** The ticket's order (the one it was placed at, when it asked for none): what the record keeps once applied. */
  readonly order: number;
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
   * Waits for the name's turn. Rejects with SupersededError when a mutation later in the order was applied
   * (before or while this one waited), and with the signal's reason when it aborts first.
   */
  acquire(name: string, ticket: TicketRequest, signal: AbortSignal): Promise<NameTurn>;
  /**
   * Whether this replica leads `role` (one of LEADER_ROLES, e.g. the autoscaler): exactly one live replica does
   * at a time; it keeps the role until it is gone or closes. Asked again before each round of the role's work.
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
 * Whether the waiting `earlier` operation is pointless once `later` is applied (desired states). Only over a name
 * that is deployed: on any other name the calls take their turns in order, each with its own outcome (an unknown
 * name, someone else's objects, a first deploy's budget).
 */
export function supersedes(later: Ticket, earlier: Ticket, record: NameRecord | undefined): boolean {
  if (later.order <= earlier.order || !setsDesiredState(later.effect)) return false;
  if (earlier.effect === "none" || earlier.effect === "policy" || !deployed(record)) return false;
  return later.effect === "replace" || earlier.effect !== "replace";
}

/**
 * The applied operation that makes `ticket` pointless: a desired state later in the order (running this one would
 * roll it back). A call is never superseded by its own earlier run (a re-run after a failover converges again).
 */
export function appliedLater(ticket: Ticket, record: NameRecord): AppliedOperation | undefined {
  const { applied } = record;
  if (!applied || !(setsDesiredState(ticket.effect) || ticket.effect === "converge")) return undefined;
  if (ticket.process !== "" && applied.process === ticket.process) return undefined;
  return applied.order > ticket.order ? applied : undefined;
}

/** Whether two records name the same applied operation. */
export function sameApplied(a: AppliedOperation | undefined, b: AppliedOperation | undefined): boolean {
  return a?.process === b?.process && a?.order === b?.order && a?.at === b?.at;
}

/**
 * The ticket whose turn is next: the first in order that no later waiting ticket supersedes. One that a later one
 * supersedes waits for that one's outcome instead (conditional coalescing): once it was applied the earlier one
 * is superseded (appliedLater); if it failed or skipped, the earlier one takes its own turn after it. `keeps`
 * marks tickets that keep their place whatever comes later (a dead replica's, kept for its process's re-run).
 */
export function nextInTurn<T extends Ticket>(
  tickets: readonly T[],
  record: NameRecord | undefined,
  keeps: (ticket: T) => boolean = () => false,
): T | undefined {
  const sorted = [...tickets].sort(byOrder);
  return sorted.find(
    (t, i) => keeps(t) || !sorted.slice(i + 1).some((later) => supersedes(later, t, record)),
  );
}

function byOrder(a: Ticket, b: Ticket): number {
  return a.order - b.order;
}

/**
 * The order of a ticket placed without one: just after everything the name holds (its last applied operation and
 * every ticket on it). It then never supersedes a call submitted after it was placed, nor is it older than what
 * was applied, whatever the replica's clock says.
 */
export function placedAfter(record: NameRecord | undefined, orders: readonly number[]): number {
  return nextOrder(Math.max(0, record?.applied?.order ?? 0, ...orders.filter(Number.isFinite)));
}

/** The smallest number greater than `x` (x + 1 is x itself at 1e18: orders are nanoseconds since the epoch). */
export function nextOrder(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  view.setBigUint64(0, x > 0 ? bits + 1n : bits - 1n);
  return view.getFloat64(0);
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
  /** Every ticket on each name, from its placement until its turn ends (a ticket without an order goes after them). */
  private readonly placed = new Map<string, Set<Ticket>>();
  private readonly reserved: Reservations = new Map();
  private checking: Promise<unknown> = Promise.resolve();
  private readonly never = new AbortController().signal;
  private readonly queue = new KeyedQueue<Ticket & { name: string }>({
    gatherMs: GATHER_MS,
    defers: (earlier, later) => supersedes(later, earlier, this.records.get(earlier.name)),
  });

  acquire(name: string, request: TicketRequest, signal: AbortSignal): Promise<NameTurn> {
    const placed = this.placed.get(name) ?? new Set<Ticket>();
    this.placed.set(name, placed);
    const seen = this.records.get(name);
    const order =
      request.order ??
      placedAfter(
        seen,
        [...placed].map((t) => t.order),
      );
    const ticket: Ticket = { ...request, order };
    placed.add(ticket);
    const leave = () => {
      placed.delete(ticket);
      if (placed.size === 0 && this.placed.get(name) === placed) this.placed.delete(name);
    };
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
              const record = this.records.get(name) ?? { version: 0 };
              const later = appliedLater(ticket, record);
              if (later) {
                reject(
                  new SupersededError(name, later, sameApplied(later, seen?.applied) ? "applied" : "waited"),
                );
                return ended();
              }
              resolve({
                record,
                order,
                takenOver: false,
                lost: this.never,
                release: async (next) => {
                  if (next) this.records.set(name, next);
                  ended();
                },
              });
            }),
          order,
          { ...ticket, name },
        )
        .catch((error: unknown) => {
          signal.removeEventListener("abort", aborted);
          reject(error);
        })
        .finally(leave);
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
  async leads(role: string): Promise<boolean> {
    assertLeaderRole(role);
    return true;
  }

  async close(): Promise<void> {}
}

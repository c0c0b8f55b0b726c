/**
 * Turns on deployment names across replicas, on each name's Lease (name-lease.ts):
 * - an operation puts a ticket down (an order without one is placed after everything the name holds, in the same
 *   write), waits for simultaneous arrivals, and takes the turn once its ticket is first (coordination.ts:
 *   nextInTurn) and the holder ended its turn or is proven gone (liveness.ts). Every write is a replace with the
 *   read resourceVersion: of two writers one wins, the other reads again;
 * - a ticket stays until its turn ends, so that a replica proven gone leaves its place behind: Colonies re-queues
 *   its process and the re-run (a live ticket of the same process) takes that place (name-places.ts);
 * - a waiting ticket that a later one supersedes lets it go first and reads its outcome from the record the later
 *   one's turn leaves (conditional coalescing, across replicas);
 * - a Lease that serves nothing once a ticket leaves (a call on a name that does not exist) is deleted, with the
 *   read resourceVersion so that a concurrent arrival keeps it.
 * Writes are idempotent (a write that timed out may have gone through), and a transient apiserver failure makes a
 * waiting operation wait longer, not fail.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Lease } from "@kubernetes/client-node";
import { V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import {
  type AppliedOperation,
  appliedLater,
  GATHER_MS,
  type NameRecord,
  type NameTurn,
  nextInTurn,
  placedAfter,
  sameApplied,
  type Ticket,
  type TicketRequest,
} from "./coordination.js";
import { type LeaseStore, transient } from "./lease-store.js";
import type { ReplicaLiveness } from "./liveness.js";
import {
  byOrder,
  freshNameLease,
  holderOf,
  leaving,
  type NameState,
  replicaOf,
  type StoredTicket,
  serves,
  standsIn,
  stateOf,
  withState,
} from "./name-lease.js";
import type { NamePlaces } from "./name-places.js";
import { SupersededError } from "./stack-errors.js";

/** The time for simultaneous tickets to arrive (see coordination.ts), longer across replicas. */
const LEASE_GATHER_MS = 2.5 * GATHER_MS;

export interface NameTurnsOptions {
  store: LeaseStore;
  liveness: ReplicaLiveness;
  places: NamePlaces;
  replica: string;
  project: string;
  nameLease: (name: string) => string;
  leaseMs: number;
  pollMs: number;
  /** Aborts when this replica can no longer prove it is alive (heartbeat.ts). */
  lost: AbortSignal;
  /** Whether an operation stopped for this reason leaves its ticket in place for its process's re-run. */
  keepsPlace?: (reason: unknown) => boolean;
  logger: Logger;
}

export class NameTurns {
  constructor(private readonly options: NameTurnsOptions) {}

  async acquire(name: string, request: TicketRequest, signal: AbortSignal): Promise<NameTurn> {
    const { store, liveness, places, replica, lost } = this.options;
    const leaseName = this.options.nameLease(name);
    const id = randomBytes(6).toString("hex");
    const mine: StoredTicket = { ...request, order: request.order ?? 0, id, replica };
    const holder = holderOf(replica, id);
    /** The operation applied when the ticket was put down (a later one applied since was applied while it waited). */
    let seen: AppliedOperation | undefined;
    await this.retrying(signal, () =>
      this.change(
        leaseName,
        name,
        (state) => {
          // Placed by an earlier attempt whose answer did not arrive: it went through.
          const placed = state.tickets.find((t) => t.id === id);
          if (placed) {
            mine.order = placed.order;
            return false;
          }
          // Computed again on every attempt: the write that places the ticket is the one that read the others.
          if (request.order === undefined)
            mine.order = placedAfter(
              state.record,
              state.tickets.map((t) => t.order),
            );
          seen = state.record.applied;
          state.tickets.push(mine);
          return true;
        },
        signal,
      ),
    );
    let claimed = false;
    /** Whether the last attempt to take the turn took it from a holder proven gone. */
    let tookOver = false;
    /** Tickets whose place nobody will take, as last read: withdrawn with this one once it is superseded. */
    let stale = new Set<string>();
    let superseded = false;
    try {
      // Operations assigned at the same moment to other replicas get to put their tickets down too.
      await sleep(LEASE_GATHER_MS, undefined, { signal });
      for (;;) {
        const taken = await this.retrying(signal, async () => {
          const lease = await store.read(leaseName, signal);
          if (!lease) throw new Error(`the Lease ${leaseName} disappeared while waiting for its turn`);
          const state = stateOf(lease);
          const current = lease.spec?.holderIdentity;
          // A write that took the turn went through although its answer did not arrive.
          if (current === holder) return { lease, takenOver: tookOver, previous: undefined };
          const gone = await liveness.gone([
            ...state.tickets.map((t) => t.replica),
            ...(current ? [replicaOf(current)] : []),
          ]);
          const tickets = await places.kept(state.tickets, gone);
          stale = new Set(state.tickets.filter((t) => !tickets.includes(t)).map((t) => t.id));
          if (!tickets.some((t) => t.id === id)) {
            throw new Error(`this replica's ticket on ${name} was dropped: it was taken for gone`);
          }
          // The record only moves forward: once a later desired state is applied, this one never needs a turn.
          const later = appliedLater(mine, state.record);
          if (later) {
            superseded = true;
            throw new SupersededError(name, later, sameApplied(later, seen) ? "applied" : "waited");
          }
          // A dead replica's ticket keeps its place for its re-run, even behind a later one that supersedes it.
          const first = nextInTurn(tickets.slice().sort(byOrder), state.record, (t) => standsIn(t, gone));
          const takenOver = !!current && gone.has(replicaOf(current));
          if (
            first?.id === id &&
            (!current || takenOver) &&
            !(await places.untrackedEarlier(name, mine.order, state.tickets))
          ) {
            // The ticket stays until the turn ends: if this replica dies, its place in the order stays too.
            tookOver = takenOver;
            const written = await store.replace(this.taking(lease, { ...state, tickets }, holder), signal);
            return written ? { lease: written, takenOver, previous: current } : "again";
          }
          if (tickets.length !== state.tickets.length) {
            // Drop the tickets whose place nobody will take (they would otherwise block the name forever).
            await store.replace(withState(lease, { ...state, tickets }), signal);
            return "again";
          }
          return "wait";
        });
        if (taken === "again") continue;
        if (taken !== "wait") {
          claimed = true;
          if (taken.takenOver) {
            this.options.logger.warn(
              { deployment: name, previousHolder: taken.previous },
              "took over the turn of a replica proven gone",
            );
          }
          return this.turn(leaseName, name, taken.lease, mine, taken.takenOver, signal);
        }
        await sleep(this.options.pollMs * (0.5 + Math.random()), undefined, { signal });
        lost.throwIfAborted();
      }
    } finally {
      // A superseded re-run may be the last call on its name: the dead replica's ticket it stood for goes too.
      // (Not on an abort: a ticket kept for a process that is still open must stay for its next re-run.)
      if (!claimed)
        await this.withdraw(leaseName, name, id, this.keepsPlace(signal), superseded ? stale : new Set());
    }
  }

  /**
   * Keeps the place of a call a gone replica was running without having put its ticket down (assigned just before
   * it died): a ticket that stands in for it (abandoned, of the gone replica, changing nothing itself) until its
   * re-run's ticket takes the place, or its process is closed. Nothing when the call has a ticket on the name.
   */
  async standIn(name: string, ticket: Ticket, replica: string): Promise<void> {
    await this.change(this.options.nameLease(name), name, (state) => {
      if (state.tickets.some((t) => t.process === ticket.process)) return false;
      const id = randomBytes(6).toString("hex");
      state.tickets.push({ ...ticket, effect: "none", id, replica, abandoned: true });
      return true;
    });
  }

  /** The Lease with the turn given to `holder`. */
  private taking(lease: V1Lease, state: NameState, holder: string): V1Lease {
    const body = withState(lease, state);
    body.spec = {
      ...body.spec,
      holderIdentity: holder,
      leaseDurationSeconds: this.options.leaseMs / 1000,
      acquireTime: new V1MicroTime(),
      renewTime: new V1MicroTime(),
      leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1,
    };
    return body;
  }

  private turn(
    leaseName: string,
    name: string,
    lease: V1Lease,
    mine: StoredTicket,
    takenOver: boolean,
    signal: AbortSignal,
  ): NameTurn {
    const holder = holderOf(this.options.replica, mine.id);
    return {
      record: stateOf(lease).record,
      order: mine.order,
      takenOver,
      lost: this.options.lost,
      // Retried: until it is written, the name waits for this replica (or for its proof of death).
      release: (next?: NameRecord) =>
        this.persisting(8, () => {
          const keep = this.keepsPlace(signal);
          return this.change(leaseName, name, (state, current) => {
            if (current.spec?.holderIdentity !== holder) return false;
            state.tickets = leaving(state.tickets, mine.id, keep);
            if (next) state.record = next;
            current.spec = { ...current.spec, holderIdentity: undefined };
            return true;
          });
        }),
    };
  }

  /** Whether an operation stopped by `signal` keeps its ticket in place for its process's re-run. */
  private keepsPlace(signal: AbortSignal): boolean {
    return signal.aborted && (this.options.keepsPlace?.(signal.reason) ?? false);
  }

  /**
   * Removes a ticket that will not take its turn (superseded, aborted, failed), or, when `abandon`, leaves it as
   * a place for its process's re-run; and the `stale` tickets, whose place nobody will take (read before).
   */
  private async withdraw(
    leaseName: string,
    name: string,
    id: string,
    abandon: boolean,
    stale: ReadonlySet<string> = new Set(),
  ): Promise<void> {
    await this.persisting(3, () =>
      this.change(leaseName, name, (state) => {
        const before = JSON.stringify(state.tickets);
        state.tickets = leaving(state.tickets, id, abandon).filter((t) => !stale.has(t.id));
        return JSON.stringify(state.tickets) !== before;
      }),
    ).catch((error: unknown) => {
      // Left behind, it is dropped with this replica's Lease at the latest.
      this.options.logger.warn({ err: error, deployment: name }, "could not withdraw a ticket");
    });
  }

  /**
   * Read-modify-write of a name's Lease (created when missing), again on conflicts. `edit` changes the state (and
   * may change the Lease itself); it returns false when there is nothing to write. A Lease left serving nothing is
   * deleted instead, if it is still as read.
   */
  private async change(
    leaseName: string,
    name: string,
    edit: (state: NameState, lease: V1Lease) => boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const { store, project, leaseMs } = this.options;
    for (;;) {
      const lease =
        (await store.read(leaseName, signal)) ?? freshNameLease(leaseName, name, project, leaseMs / 1000);
      const state = stateOf(lease);
      if (!edit(state, lease)) return;
      const version = lease.metadata?.resourceVersion;
      if (!serves(lease, state)) {
        if (!version || (await store.remove(leaseName, version, signal))) return;
        continue;
      }
      if (await store.write(withState(lease, state), signal)) return;
    }
  }

  /** Runs `step` again after transient apiserver failures, for as long as the operation and the replica last. */
  private async retrying<T>(signal: AbortSignal, step: () => Promise<T>): Promise<T> {
    for (let failures = 0; ; failures++) {
      signal.throwIfAborted();
      this.options.lost.throwIfAborted();
      try {
        return await step();
      } catch (error) {
        signal.throwIfAborted();
        this.options.lost.throwIfAborted();
        if (!transient(error)) throw error;
        if (failures === 0) {
          this.options.logger.warn(
            { err: (error as Error).message },
            "the apiserver failed a Lease request; waiting on",
          );
        }
        await sleep(Math.min(5_000, this.options.pollMs * 2 ** Math.min(failures, 5)), undefined, { signal });
      }
    }
  }

  /** Runs `step` up to `attempts` times, with a growing pause: a turn's end must be written. */
  private async persisting(attempts: number, step: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (error) {
        if (attempt >= attempts) throw error;
        await sleep(250 * 2 ** attempt);
      }
    }
  }
}

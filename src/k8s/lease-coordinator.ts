/**
 * Turns on deployment names across k8s-executor replicas, with Kubernetes Leases (coordination.k8s.io), the
 * mechanism Kubernetes' own controllers use for leader election:
 * - each replica holds a Lease of its own (`replica.<id>.<project>`) and renews it every third of its duration;
 *   it is proven gone when that Lease is deleted, or stays unchanged for a whole duration as measured by the
 *   observer's own clock (client-go's rule: no comparison of clocks across machines). A replica that cannot
 *   renew for two thirds of the duration aborts its own work before anyone may take over;
 * - each deployment name has a Lease (`<name>.<project>`) whose annotations hold the waiting tickets and the
 *   name's record (version, last applied operation); `holderIdentity` is the turn's holder. Every change is a
 *   replace with the read resourceVersion (optimistic concurrency: of two writers one wins, the other re-reads);
 * - the turn goes to the first ticket in order (coordination.ts: nextInTurn) once the holder ends its turn or is
 *   proven gone; a ticket stays until its turn ends, so that a replica proven gone leaves its place in the order
 *   behind: Colonies re-queues its process and the re-run (a live ticket of the same process) takes that place;
 *   the place is given up only when the process is closed in Colonies. A waiting ticket that a later one
 *   supersedes lets it go first and reads its outcome from the record the later one's turn leaves on the Lease
 *   (conditional coalescing, across replicas); a ticket without an order is placed after every ticket and the
 *   record, in the same optimistic-concurrency write that puts it down;
 * - budget reservations of every replica live on one Lease (`budget.<project>`): a check and its reservation
 *   are written with the resourceVersion the check read, so that a concurrent reservation makes it check again.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { isApiStatus } from "../atoms/kube-api.js";
import {
  type AppliedOperation,
  appliedLater,
  GATHER_MS,
  type NameCoordinator,
  type NameRecord,
  type NameTurn,
  nextInTurn,
  placedAfter,
  type Reservations,
  sameApplied,
  type Ticket,
  type TicketRequest,
} from "./coordination.js";
import { ownedLabels } from "./labels.js";
import { assertLeaderRole, nameLease, replicaLease, roleLease } from "./lease-names.js";
import { SupersededError } from "./stack-errors.js";

export interface LeaseCoordinatorOptions {
  api: CoordinationV1Api;
  namespace: string;
  project: string;
  /** This replica's identity, unique per start (a restarted replica must not resume its predecessor's turns). */
  replica: string;
  /** How long a replica that stops renewing keeps its turns. */
  leaseSeconds?: number;
  /** How often a waiting operation looks at its name's Lease. */
  pollMs?: number;
  /**
   * Whether a Colonies process may still run (WAITING or RUNNING): a ticket of a replica proven gone keeps its
   * place while its process is open. Without it, such tickets are dropped at once.
   */
  processOpen?: (processId: string) => Promise<boolean>;
  /** Called once this replica can no longer prove it is alive (its turns and tickets are then others'). */
  onLost?: (reason: Error) => void;
  /**
   * Whether an operation stopped for this reason leaves its ticket in place for its process's re-run (Colonies
   * re-queued the process: another replica runs it next, and it must not lose its place in the order meanwhile).
   */
  keepsPlace?: (reason: unknown) => boolean;
  /**
   * An open Colonies process that mutates `name`, comes before `order`, and has none of the `tracked` tickets:
   * a call assigned to a replica that died before it could put its ticket down, or one re-queued since. A turn
   * waits for it (its re-run puts the ticket down), so that calls keep their submission order even then.
   */
  untrackedEarlier?: (
    name: string,
    order: number,
    tracked: ReadonlySet<string>,
  ) => Promise<string | undefined>;
  logger: Logger;
}

/**
 * A ticket as stored on the name's Lease: whose (replica), and a unique id. An abandoned ticket was left by an
 * operation stopped because its process was re-queued: like a dead replica's, it keeps its place for the re-run.
 */
interface StoredTicket extends Ticket {
  id: string;
  replica: string;
  abandoned?: boolean;
}

interface NameState {
  tickets: StoredTicket[];
  record: NameRecord;
}

const VERSION = "colonyos.io/version";
const APPLIED = "colonyos.io/applied";
const TICKETS = "colonyos.io/tickets";
const RESERVED = "colonyos.io/reserved";
const ROLE = "colonyos.io/lease";
/** The time for simultaneous tickets to arrive (see coordination.ts), longer across replicas. */
const LEASE_GATHER_MS = 2.5 * GATHER_MS;
/** How often another replica's Lease is looked at, at most. */
const LIVENESS_CHECK_MS = 1_000;
/** How long an answer of processOpen is reused. */
const PROCESS_STATE_MS = 2_000;

export class LeaseCoordinator implements NameCoordinator {
  readonly kind = "lease";
  private readonly leaseMs: number;
  private readonly pollMs: number;
  /** Aborts when this replica cannot prove it is alive. */
  private readonly alive = new AbortController();
  private heartbeat?: NodeJS.Timeout;
  private ownLease?: V1Lease;
  /** Other replicas' Leases as last observed: resourceVersion, and since when (this replica's clock). */
  private readonly observed = new Map<string, { version: string; since: number; durationMs: number }>();
  private readonly processStates = new Map<string, { open: boolean; at: number }>();
  private readonly untracked = new Map<string, { found: boolean; at: number }>();
  /** Replicas proven gone, and when each other replica's Lease was last looked at. */
  private readonly gone = new Set<string>();
  private readonly checked = new Map<string, number>();
  /** Leader Leases this replica took. */
  private readonly led = new Set<string>();

  private constructor(private readonly options: LeaseCoordinatorOptions) {
    this.leaseMs = (options.leaseSeconds ?? 15) * 1000;
    this.pollMs = options.pollMs ?? 300;
  }

  /** Creates this replica's Lease and starts renewing it. */
  static async start(options: LeaseCoordinatorOptions): Promise<LeaseCoordinator> {
    const coordinator = new LeaseCoordinator(options);
    await coordinator.startHeartbeat();
    return coordinator;
  }

  get replica(): string {
    return this.options.replica;
  }

  /** The Lease of a deployment name (lease-names.ts). */
  nameLease(name: string): string {
    return nameLease(name, this.options.project);
  }

  replicaLease(replica: string): string {
    return replicaLease(replica, this.options.project);
  }

  async acquire(name: string, request: TicketRequest, signal: AbortSignal): Promise<NameTurn> {
    const leaseName = this.nameLease(name);
    const id = randomBytes(6).toString("hex");
    const mine: StoredTicket = { ...request, order: request.order ?? 0, id, replica: this.replica };
    /** The operation applied when the ticket was put down (a later one applied since was applied while it waited). */
    let seen: AppliedOperation | undefined;
    await this.change(leaseName, name, (state) => {
      // Computed again on every attempt: the write that places the ticket is the one that read the others.
      if (request.order === undefined)
        mine.order = placedAfter(
          state.record,
          state.tickets.map((t) => t.order),
        );
      seen = state.record.applied;
      state.tickets.push(mine);
      return true;
    });
    let claimed = false;
    try {
      // Operations assigned at the same moment to other replicas get to put their tickets down too.
      await sleep(LEASE_GATHER_MS, undefined, { signal });
      for (;;) {
        signal.throwIfAborted();
        this.alive.signal.throwIfAborted();
        const lease = await this.read(leaseName);
        if (!lease) throw new Error(`the Lease ${leaseName} disappeared while waiting for its turn`);
        const state = stateOf(lease);
        const holder = lease.spec?.holderIdentity;
        const gone = await this.goneReplicas([
          ...state.tickets.map((t) => t.replica),
          ...(holder ? [replicaOf(holder)] : []),
        ]);
        const tickets = await this.effective(state.tickets, gone);
        if (!tickets.some((t) => t.id === mine.id)) {
          throw new Error(`this replica's ticket on ${name} was dropped: it was taken for gone`);
        }
        // The record only moves forward: once a later desired state is applied, this one never needs a turn.
        const later = appliedLater(mine, state.record);
        if (later) throw new SupersededError(name, later, sameApplied(later, seen) ? "applied" : "waited");
        // A dead replica's ticket keeps its place for its re-run, even behind a later one that supersedes it.
        const first = nextInTurn(tickets.slice().sort(byOrder), state.record, (t) => standsIn(t, gone));
        const takenOver = !!holder && gone.has(replicaOf(holder));
        if (
          first?.id === mine.id &&
          (!holder || takenOver) &&
          !(await this.untrackedEarlier(name, mine.order, state.tickets))
        ) {
          // The ticket stays until the turn ends: if this replica dies, its place in the order stays too.
          const body = withState(lease, { ...state, tickets });
          body.spec = {
            ...body.spec,
            holderIdentity: `${this.replica}/${mine.id}`,
            leaseDurationSeconds: this.leaseMs / 1000,
            acquireTime: new V1MicroTime(),
            renewTime: new V1MicroTime(),
            leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1,
          };
          const taken = await this.replace(leaseName, body);
          if (taken) {
            claimed = true;
            if (takenOver) {
              this.options.logger.warn(
                { deployment: name, previousHolder: holder },
                "took over the turn of a replica proven gone",
              );
            }
            return this.turn(leaseName, name, taken, mine, takenOver, signal);
          }
          continue;
        }
        if (tickets.length !== state.tickets.length) {
          // Drop the tickets whose place nobody will take (they would otherwise block the name forever).
          await this.replace(leaseName, withState(lease, { ...state, tickets }));
          continue;
        }
        await sleep(this.pollMs * (0.5 + Math.random()), undefined, { signal });
      }
    } finally {
      if (!claimed) await this.withdraw(leaseName, name, mine.id, this.keepsPlace(signal));
    }
  }

  async reserve(
    name: string,
    amount: number,
    check: (reserved: Reservations) => Promise<void>,
  ): Promise<() => Promise<void>> {
    const leaseName = roleLease("budget", this.options.project);
    type Stored = Record<string, { amount: number; replica: string }>;
    const storedOf = (lease: V1Lease) =>
      parsed<Stored>(lease.metadata?.annotations?.[RESERVED], (v) => typeof v === "object" && v !== null) ??
      {};
    const write = async (lease: V1Lease, stored: Stored) => {
      const body = {
        ...lease,
        metadata: {
          ...lease.metadata,
          annotations: { ...lease.metadata?.annotations, [RESERVED]: JSON.stringify(stored) },
        },
      };
      return lease.metadata?.resourceVersion ? this.replace(leaseName, body) : this.create(body);
    };
    const fresh = (): V1Lease => ({
      metadata: { name: leaseName, labels: { ...ownedLabels(this.options.project), [ROLE]: "budget" } },
      spec: {},
    });
    for (;;) {
      this.alive.signal.throwIfAborted();
      const lease = (await this.read(leaseName)) ?? fresh();
      const stored = storedOf(lease);
      const gone = await this.goneReplicas(Object.values(stored).map((r) => r.replica));
      for (const [key, r] of Object.entries(stored)) if (gone.has(r.replica)) delete stored[key];
      const reserved: Reservations = new Map(Object.entries(stored).map(([key, r]) => [key, r.amount]));
      await check(reserved);
      stored[name] = { amount: Math.max(amount, stored[name]?.amount ?? 0), replica: this.replica };
      if (await write(lease, stored)) break;
    }
    return async () => {
      for (let attempt = 0; attempt < 8; attempt++) {
        const lease = await this.read(leaseName);
        const stored = lease ? storedOf(lease) : {};
        if (!lease || stored[name]?.replica !== this.replica) return;
        delete stored[name];
        if (await write(lease, stored)) return;
      }
    };
  }

  /**
   * Leadership of a role is a Lease (`<role>.<project>`) whose holder is a replica: held while that replica's
   * own Lease proves it alive, taken over once it is proven gone (the same rule as for turns), so it needs no
   * renewing of its own.
   */
  async leads(role: string): Promise<boolean> {
    assertLeaderRole(role);
    if (this.alive.signal.aborted) return false;
    const leaseName = roleLease(role, this.options.project);
    const lease = await this.read(leaseName);
    const holder = lease?.spec?.holderIdentity;
    if (holder === this.replica) {
      this.led.add(leaseName);
      return true;
    }
    if (holder && !(await this.goneReplicas([holder])).has(holder)) return false;
    const now = new V1MicroTime();
    const body: V1Lease = lease ?? {
      metadata: { name: leaseName, labels: { ...ownedLabels(this.options.project), [ROLE]: "leader" } },
      spec: {},
    };
    body.spec = {
      ...body.spec,
      holderIdentity: this.replica,
      leaseDurationSeconds: this.leaseMs / 1000,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: (lease?.spec?.leaseTransitions ?? 0) + (lease ? 1 : 0),
    };
    const written = lease ? await this.replace(leaseName, body) : await this.create(body);
    if (!written) return false;
    this.led.add(leaseName);
    this.options.logger.info({ role, previousHolder: holder ?? null }, "this replica leads now");
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    // Roles go to another replica at once.
    for (const leaseName of this.led) {
      const lease = await this.read(leaseName).catch(() => undefined);
      if (lease?.spec?.holderIdentity !== this.replica) continue;
      await this.replace(leaseName, { ...lease, spec: { ...lease.spec, holderIdentity: undefined } }).catch(
        () => undefined,
      );
    }
    // Gone at once for the others: nothing of this replica is waited for.
    await this.options.api
      .deleteNamespacedLease({ name: this.replicaLease(this.replica), namespace: this.options.namespace })
      .catch(() => undefined);
  }

  private turn(
    leaseName: string,
    name: string,
    lease: V1Lease,
    mine: StoredTicket,
    takenOver: boolean,
    signal: AbortSignal,
  ): NameTurn {
    const holder = `${this.replica}/${mine.id}`;
    return {
      record: stateOf(lease).record,
      order: mine.order,
      takenOver,
      lost: this.alive.signal,
      release: async (next) => {
        // Retried: until it is written, the name waits for this replica (which is alive).
        for (let attempt = 1; ; attempt++) {
          try {
            const keep = this.keepsPlace(signal);
            return await this.change(leaseName, name, (state, current) => {
              if (current.spec?.holderIdentity !== holder) return false;
              state.tickets = leaving(state.tickets, mine.id, keep);
              if (next) state.record = next;
              current.spec = { ...current.spec, holderIdentity: undefined };
              return true;
            });
          } catch (error) {
            if (attempt >= 8) throw error;
            await sleep(250 * 2 ** attempt);
          }
        }
      },
    };
  }

  /** Whether an operation stopped by `signal` keeps its ticket in place for its process's re-run. */
  private keepsPlace(signal: AbortSignal): boolean {
    return signal.aborted && (this.options.keepsPlace?.(signal.reason) ?? false);
  }

  /**
   * Removes a ticket that will not take its turn (superseded, aborted, failed), or, when `abandon`, leaves it as
   * a place for its process's re-run.
   */
  private async withdraw(leaseName: string, name: string, id: string, abandon = false): Promise<void> {
    await this.change(leaseName, name, (state) => {
      const before = JSON.stringify(state.tickets);
      state.tickets = leaving(state.tickets, id, abandon);
      return JSON.stringify(state.tickets) !== before;
    }).catch((error: unknown) => {
      // Left behind, it is dropped with this replica's Lease at the latest.
      this.options.logger.warn({ err: error, deployment: name }, "could not withdraw a ticket");
    });
  }

  /**
   * Read-modify-write of a name's Lease (created when missing), retried on conflicts. `edit` changes the state
   * (and may change the Lease itself); it returns false when there is nothing to write.
   */
  private async change(
    leaseName: string,
    name: string,
    edit: (state: NameState, lease: V1Lease) => boolean,
  ): Promise<void> {
    for (;;) {
      const lease = (await this.read(leaseName)) ?? this.fresh(leaseName, name);
      const state = stateOf(lease);
      if (!edit(state, lease)) return;
      const body = withState(lease, state);
      const written = lease.metadata?.resourceVersion
        ? await this.replace(leaseName, body)
        : await this.create(body);
      if (written) return;
    }
  }

  /**
   * The tickets that keep their place: those of live replicas, and those of replicas proven gone whose process
   * Colonies may still run again, until a live ticket of the same process takes the place. Not even a later
   * operation that supersedes it may go first: the later one could fail for want of it (an undeploy of a name
   * whose first deploy was cut off), and the re-run would then apply out of order.
   */
  private async effective(tickets: StoredTicket[], gone: Set<string>): Promise<StoredTicket[]> {
    const live = new Set(tickets.filter((t) => !standsIn(t, gone)).map((t) => t.process));
    const kept: StoredTicket[] = [];
    for (const ticket of tickets) {
      if (!standsIn(ticket, gone)) kept.push(ticket);
      else if (!live.has(ticket.process) && (await this.processOpen(ticket.process))) kept.push(ticket);
    }
    return kept;
  }

  /** Whether an earlier call on the name is open in Colonies without a ticket (answers reused for a second). */
  private async untrackedEarlier(name: string, order: number, tickets: StoredTicket[]): Promise<boolean> {
    const { untrackedEarlier } = this.options;
    if (!untrackedEarlier) return false;
    const key = `${name}/${order}`;
    const known = this.untracked.get(key);
    if (known && Date.now() - known.at < PROCESS_STATE_MS / 2) return known.found;
    const process = await untrackedEarlier(name, order, new Set(tickets.map((t) => t.process)));
    if (process && !known?.found) {
      this.options.logger.info(
        { deployment: name, waitingFor: process },
        "an earlier call on the name is open in Colonies without a ticket; waiting for it",
      );
    }
    this.untracked.set(key, { found: process !== undefined, at: Date.now() });
    if (this.untracked.size > 1000) this.untracked.clear();
    return process !== undefined;
  }

  private async processOpen(processId: string): Promise<boolean> {
    const { processOpen } = this.options;
    if (!processOpen || !processId) return false;
    const known = this.processStates.get(processId);
    if (known && Date.now() - known.at < PROCESS_STATE_MS) return known.open;
    const open = await processOpen(processId);
    this.processStates.set(processId, { open, at: Date.now() });
    return open;
  }

  /** Which of these replicas are proven gone (this one never is: it would have aborted its work first). */
  private async goneReplicas(replicas: string[]): Promise<Set<string>> {
    const gone = new Set<string>();
    for (const replica of new Set(replicas)) {
      if (replica === this.replica) continue;
      // Gone is final (identities are never reused); alive is looked at again after a second at the earliest,
      // whatever the number of operations waiting here.
      if (this.gone.has(replica)) {
        gone.add(replica);
        continue;
      }
      if (Date.now() - (this.checked.get(replica) ?? 0) < LIVENESS_CHECK_MS) continue;
      this.checked.set(replica, Date.now());
      const lease = await this.read(this.replicaLease(replica));
      if (!lease) {
        this.gone.add(replica);
        gone.add(replica);
        continue;
      }
      const version = lease.metadata?.resourceVersion ?? "";
      const durationMs = (lease.spec?.leaseDurationSeconds ?? this.leaseMs / 1000) * 1000;
      let seen = this.observed.get(replica);
      if (seen?.version !== version) {
        seen = { version, since: Date.now(), durationMs };
        this.observed.set(replica, seen);
      }
      if (Date.now() - seen.since >= seen.durationMs) {
        this.gone.add(replica);
        gone.add(replica);
        // Its Lease serves no one any more.
        await this.options.api
          .deleteNamespacedLease({ name: this.replicaLease(replica), namespace: this.options.namespace })
          .catch(() => undefined);
        this.observed.delete(replica);
      }
    }
    return gone;
  }

  private async startHeartbeat(): Promise<void> {
    const now = new V1MicroTime();
    this.ownLease = await this.options.api.createNamespacedLease({
      namespace: this.options.namespace,
      body: {
        metadata: {
          name: this.replicaLease(this.replica),
          labels: { ...ownedLabels(this.options.project), [ROLE]: "replica" },
        },
        spec: {
          holderIdentity: this.replica,
          leaseDurationSeconds: this.leaseMs / 1000,
          acquireTime: now,
          renewTime: now,
        },
      },
    });
    let renewedAt = Date.now();
    const renew = async () => {
      try {
        const lease = this.ownLease as V1Lease;
        this.ownLease = await this.options.api.replaceNamespacedLease({
          name: this.replicaLease(this.replica),
          namespace: this.options.namespace,
          body: { ...lease, spec: { ...lease.spec, renewTime: new V1MicroTime() } },
        });
        renewedAt = Date.now();
      } catch (error) {
        // 404 or 409: another replica took this one for gone (and deleted or changed its Lease).
        const taken = isApiStatus(error, 404) || isApiStatus(error, 409);
        if (taken || Date.now() - renewedAt > (this.leaseMs * 2) / 3) {
          this.options.logger.error({ err: error }, "this replica can no longer prove it is alive");
          const reason = new Error("this k8s-executor replica lost its Lease; its operations were stopped");
          this.alive.abort(reason);
          clearInterval(this.heartbeat);
          this.options.onLost?.(reason);
        }
      }
    };
    this.heartbeat = setInterval(() => void renew(), this.leaseMs / 3);
    this.heartbeat.unref();
  }

  private async read(leaseName: string): Promise<V1Lease | undefined> {
    try {
      return await this.options.api.readNamespacedLease({
        name: leaseName,
        namespace: this.options.namespace,
      });
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** A replace with the read resourceVersion; undefined when someone else wrote first (409). */
  private async replace(leaseName: string, body: V1Lease): Promise<V1Lease | undefined> {
    try {
      return await this.options.api.replaceNamespacedLease({
        name: leaseName,
        namespace: this.options.namespace,
        body,
      });
    } catch (error) {
      if (isApiStatus(error, 409)) return undefined;
      throw error;
    }
  }

  private async create(body: V1Lease): Promise<V1Lease | undefined> {
    try {
      return await this.options.api.createNamespacedLease({ namespace: this.options.namespace, body });
    } catch (error) {
      if (isApiStatus(error, 409)) return undefined;
      throw error;
    }
  }

  private fresh(leaseName: string, name: string): V1Lease {
    return {
      metadata: {
        name: leaseName,
        namespace: this.options.namespace,
        labels: { ...ownedLabels(this.options.project, name), [ROLE]: "deployment" },
      },
      spec: { leaseDurationSeconds: this.leaseMs / 1000 },
    };
  }
}

/**
 * The tickets once ticket `id` leaves: removed, or (`abandon`) kept as its process's place for a re-run — unless
 * the re-run's own ticket is already there. A ticket leaving after its turn also takes abandoned places of its
 * process with it: the call is done.
 */
function leaving(tickets: StoredTicket[], id: string, abandon: boolean): StoredTicket[] {
  const own = tickets.find((t) => t.id === id);
  const rerun = tickets.some((t) => t.id !== id && t.process === own?.process && !t.abandoned);
  if (abandon && own && !rerun) return tickets.map((t) => (t.id === id ? { ...t, abandoned: true } : t));
  return tickets.filter((t) => t.id !== id && !(t.abandoned && own && t.process === own.process && !abandon));
}

/** A ticket that only keeps a place for its process's re-run: its replica is gone, or it was abandoned. */
function standsIn(ticket: StoredTicket, gone: ReadonlySet<string>): boolean {
  return gone.has(ticket.replica) || ticket.abandoned === true;
}

/** The replica part of a turn holder (`<replica>/<ticket id>`). */
function replicaOf(holder: string): string {
  return holder.split("/")[0] ?? holder;
}

function byOrder(a: StoredTicket, b: StoredTicket): number {
  return a.order - b.order || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function withState(lease: V1Lease, state: NameState): V1Lease {
  const annotations: Record<string, string> = {
    ...lease.metadata?.annotations,
    [VERSION]: String(state.record.version),
    [TICKETS]: JSON.stringify(state.tickets),
  };
  if (state.record.applied) annotations[APPLIED] = JSON.stringify(state.record.applied);
  return { ...lease, metadata: { ...lease.metadata, annotations } };
}

function stateOf(lease: V1Lease): NameState {
  const annotations = lease.metadata?.annotations ?? {};
  const version = Number(annotations[VERSION] ?? 0);
  return {
    tickets: parsed<StoredTicket[]>(annotations[TICKETS], (v) => Array.isArray(v)) ?? [],
    record: {
      version: Number.isFinite(version) ? version : 0,
      applied: parsed<AppliedOperation>(
        annotations[APPLIED],
        (v) => typeof v?.process === "string" && typeof v?.order === "number",
      ),
    },
  };
}

/** An annotation's JSON value when it has the expected shape; undefined otherwise (it then counts as absent). */
function parsed<T>(text: string | undefined, valid: (value: T) => boolean): T | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as T;
    return valid(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

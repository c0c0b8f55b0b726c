/**
 * Turns on deployment names across k8s-executor replicas, with Kubernetes Leases (coordination.k8s.io), the
 * mechanism Kubernetes' own controllers use for leader election. This is the NameCoordinator the executor uses;
 * each role lives in a file of its own, over one Lease store (lease-store.ts):
 * - heartbeat.ts: this replica's own Lease, renewed safely under a slow apiserver, and given up in time;
 * - liveness.ts (with replica-registry.ts): whether other replicas are alive, and the cleanup after a dead one;
 * - name-turns.ts (with name-lease.ts, name-places.ts): the turns and tickets on each deployment name;
 * - budget-lease.ts: budget reservations of every replica on one Lease;
 * - leadership.ts: one leader per role.
 */
import type { CoordinationV1Api } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { BudgetLease } from "./budget-lease.js";
import type { NameCoordinator, NameTurn, Reservations, Ticket, TicketRequest } from "./coordination.js";
import { Heartbeat, type ReplicaExecutor } from "./heartbeat.js";
import { ownedLabels } from "./labels.js";
import { Leadership } from "./leadership.js";
import { nameLease, replicaLease, roleLease } from "./lease-names.js";
import { LeaseStore } from "./lease-store.js";
import { ReplicaLiveness } from "./liveness.js";
import { ROLE_LABEL } from "./name-lease.js";
import { NamePlaces } from "./name-places.js";
import { NameTurns } from "./name-turns.js";
import { ReplicaRegistry } from "./replica-registry.js";

export type { ReplicaExecutor } from "./heartbeat.js";

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
  /** The deadline of one apiserver request (a renewal's is shorter: a sixth of the lease). */
  requestTimeoutMs?: number;
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
  /** Who this replica is in Colonies, once registered: recorded on its Lease for whoever proves it gone. */
  executor?: () => ReplicaExecutor | undefined;
  /**
   * Removes the Colonies executor record of a replica proven gone (Colonies re-queues its running processes at
   * once); throws to be tried again later.
   */
  executorGone?: (executor: ReplicaExecutor, replica: string) => Promise<void>;
  logger: Logger;
}

export class LeaseCoordinator implements NameCoordinator {
  readonly kind = "lease";

  private constructor(
    private readonly options: LeaseCoordinatorOptions,
    private readonly store: LeaseStore,
    private readonly heartbeat: Heartbeat,
    private readonly registry: ReplicaRegistry,
    private readonly liveness: ReplicaLiveness,
    private readonly turns: NameTurns,
    private readonly budget: BudgetLease,
    private readonly leadership: Leadership,
  ) {}

  /** Creates this replica's Lease, starts renewing it, and registers the replica for the others to watch. */
  static async start(options: LeaseCoordinatorOptions): Promise<LeaseCoordinator> {
    const { project, replica, logger } = options;
    const leaseMs = (options.leaseSeconds ?? 15) * 1000;
    const store = new LeaseStore({
      api: options.api,
      namespace: options.namespace,
      timeoutMs: options.requestTimeoutMs,
    });
    const labels = ownedLabels(project);
    const ownLease = (id: string) => replicaLease(id, project);
    const heartbeat = await Heartbeat.start({
      store,
      leaseName: ownLease(replica),
      replica,
      leaseMs,
      labels: { ...labels, [ROLE_LABEL]: "replica" },
      executor: options.executor,
      onLost: (reason) => options.onLost?.(reason),
      logger,
    });
    const lost = heartbeat.lost;
    const registry = new ReplicaRegistry(store, roleLease("replica", project), labels);
    const liveness = new ReplicaLiveness({
      store,
      registry,
      replica,
      replicaLease: ownLease,
      leaseMs,
      executorGone: options.executorGone,
      logger,
    });
    const coordinator = new LeaseCoordinator(
      options,
      store,
      heartbeat,
      registry,
      liveness,
      new NameTurns({
        store,
        liveness,
        places: new NamePlaces(options),
        replica,
        project,
        nameLease: (name) => nameLease(name, project),
        leaseMs,
        pollMs: options.pollMs ?? 300,
        lost,
        keepsPlace: options.keepsPlace,
        logger,
      }),
      new BudgetLease({ store, liveness, leaseName: roleLease("budget", project), labels, replica, lost }),
      new Leadership({
        store,
        liveness,
        roleLease: (role) => roleLease(role, project),
        labels,
        replica,
        leaseMs,
        lost,
        logger,
      }),
    );
    try {
      await registry.add(replica);
    } catch (error) {
      await coordinator.close();
      throw error;
    }
    liveness.watch(Math.max(1_000, leaseMs / 3));
    // Once lost, nothing of this replica's is watched or written any more.
    lost.addEventListener("abort", () => void liveness.stop(), { once: true });
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

  /** Aborts once this replica can no longer prove it is alive. */
  get lost(): AbortSignal {
    return this.heartbeat.lost;
  }

  acquire(name: string, request: TicketRequest, signal: AbortSignal): Promise<NameTurn> {
    return this.turns.acquire(name, request, signal);
  }

  reserve(
    name: string,
    amount: number,
    check: (reserved: Reservations) => Promise<void>,
  ): Promise<() => Promise<void>> {
    return this.budget.reserve(name, amount, check);
  }

  /**
   * Whether this replica leads `role`: its Lease's holder is this replica, or was one proven gone (no renewing of
   * its own: the holder's own Lease proves it alive).
   */
  leads(role: string): Promise<boolean> {
    return this.leadership.leads(role);
  }

  /**
   * Keeps the place of a call that the gone `replica` was running without a ticket on its name (it died just after
   * Colonies assigned it), for its re-run: call before its Colonies record is removed, which re-queues the call
   * with nothing to tell it from a new one.
   */
  keepPlace(name: string, ticket: Ticket, replica: string): Promise<void> {
    return this.turns.standIn(name, ticket, replica);
  }

  async close(): Promise<void> {
    await this.heartbeat.stop();
    await this.liveness.stop();
    // Roles go to another replica at once.
    await this.leadership.handOn();
    // Gone at once for the others: nothing of this replica is waited for.
    await this.registry.remove([this.replica]).catch(() => undefined);
    await this.store.remove(this.replicaLease(this.replica)).catch(() => undefined);
  }
}

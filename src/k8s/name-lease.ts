/**
 * What a deployment name's Lease holds, and how it is written: the waiting tickets and the name's record
 * (version, last applied operation) as annotations, the turn's holder as `holderIdentity` (`<replica>/<ticket>`).
 * Pure functions: the reads and writes are the store's (lease-store.ts), the waiting is name-turns.ts's.
 */
import type { V1Lease } from "@kubernetes/client-node";
import type { AppliedOperation, NameRecord, Ticket } from "./coordination.js";
import { ownedLabels } from "./labels.js";
import { annotation } from "./lease-store.js";

/**
 * A ticket as stored on the name's Lease: whose (replica), and a unique id. An abandoned ticket was left by an
 * operation stopped because its process was re-queued: like a dead replica's, it keeps its place for the re-run.
 */
export interface StoredTicket extends Ticket {
  id: string;
  replica: string;
  abandoned?: boolean;
}

export interface NameState {
  tickets: StoredTicket[];
  record: NameRecord;
}

const VERSION = "colonyos.io/version";
const APPLIED = "colonyos.io/applied";
const TICKETS = "colonyos.io/tickets";
/** The label that says what a coordinator Lease is for (deployment, replica, leader, budget). */
export const ROLE_LABEL = "colonyos.io/lease";

export function stateOf(lease: V1Lease): NameState {
  const version = Number(lease.metadata?.annotations?.[VERSION] ?? 0);
  return {
    tickets: annotation<StoredTicket[]>(lease, TICKETS, (v) => Array.isArray(v)) ?? [],
    record: {
      version: Number.isFinite(version) ? version : 0,
      applied: annotation<AppliedOperation>(
        lease,
        APPLIED,
        (v) => typeof v?.process === "string" && typeof v?.order === "number",
      ),
    },
  };
}

export function withState(lease: V1Lease, state: NameState): V1Lease {
  const annotations: Record<string, string> = {
    ...lease.metadata?.annotations,
    [VERSION]: String(state.record.version),
    [TICKETS]: JSON.stringify(state.tickets),
  };
  if (state.record.applied) annotations[APPLIED] = JSON.stringify(state.record.applied);
  return { ...lease, metadata: { ...lease.metadata, annotations } };
}

/** A name's Lease before its first write. */
export function freshNameLease(
  leaseName: string,
  name: string,
  project: string,
  leaseSeconds: number,
): V1Lease {
  return {
    metadata: { name: leaseName, labels: { ...ownedLabels(project, name), [ROLE_LABEL]: "deployment" } },
    spec: { leaseDurationSeconds: leaseSeconds },
  };
}

/**
 * Whether the Lease serves nothing: no ticket, no turn, and a record of nothing (no update was ever attempted
 * through it, so no replica's cache depends on its version). A call on a name that does not exist leaves such a
 * Lease; it is deleted, so that calls on unknown names do not grow etcd. A record of anything, even an undeploy,
 * keeps the Lease: it supersedes older calls.
 */
export function serves(lease: V1Lease, state: NameState): boolean {
  return (
    state.tickets.length > 0 ||
    !!lease.spec?.holderIdentity ||
    state.record.version !== 0 ||
    state.record.applied !== undefined
  );
}

/**
 * The tickets once ticket `id` leaves: removed, or (`abandon`) kept as its process's place for a re-run — unless
 * the re-run's own ticket is already there. A ticket leaving after its turn also takes abandoned places of its
 * process with it: the call is done.
 */
export function leaving(tickets: StoredTicket[], id: string, abandon: boolean): StoredTicket[] {
  const own = tickets.find((t) => t.id === id);
  const rerun = tickets.some((t) => t.id !== id && t.process === own?.process && !t.abandoned);
  if (abandon && own && !rerun) return tickets.map((t) => (t.id === id ? { ...t, abandoned: true } : t));
  return tickets.filter((t) => t.id !== id && !(t.abandoned && own && t.process === own.process && !abandon));
}

/** A ticket that only keeps a place for its process's re-run: its replica is gone, or it was abandoned. */
export function standsIn(ticket: StoredTicket, gone: ReadonlySet<string>): boolean {
  return gone.has(ticket.replica) || ticket.abandoned === true;
}

/** The turn holder of a ticket, and the replica part of a holder. */
export function holderOf(replica: string, ticketId: string): string {
  return `${replica}/${ticketId}`;
}

export function replicaOf(holder: string): string {
  return holder.split("/")[0] ?? holder;
}

export function byOrder(a: StoredTicket, b: StoredTicket): number {
  return a.order - b.order || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

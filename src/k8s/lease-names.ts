/**
 * The names of the Leases the lease coordinator keeps in the executor's namespace, in one place:
 * - a deployment name's Lease: `<name>.<project>`;
 * - the coordinator's own Leases: `<role>.<project>` for a role (the autoscaler's, the drift check's and the
 *   identity sweep's leadership, the budget reservations, and `replica.<project>`: the list of replicas the others
 *   watch) and `replica.<id>.<project>` for each replica's liveness.
 * A deployment named after a role would share that role's Lease (a deployment `autoscaler` would wait for the
 * autoscaler's leader to end a turn it never holds), so the roles are reserved deployment names.
 *
 * Why reserved names rather than a prefix of their own for the names' Leases: a prefix would move every name to
 * another Lease on upgrade. During a rolling upgrade, old and new replicas would take turns on two Leases for one
 * name (two updates of one stack at once, each taking the other's Pulumi lock for a dead holder's), and the
 * records the old Leases carry (the last applied operation, the version caches depend on) would be left behind.
 * Reserving the role names keeps every existing Lease where it is.
 */

/**
 * The roles one replica leads at a time (`leads`), each a Lease whose holder is the leader. `leads` refuses a role
 * that is not listed here, so a new role must be added, and is then reserved as a deployment name too.
 */
export const LEADER_ROLES = ["autoscaler", "drift", "sweep"] as const;

/** The first part of every Lease of the coordinator's own: the leader roles, the budget, the replicas. */
export const ROLE_LEASES = [...LEADER_ROLES, "budget", "replica"] as const;

export type LeaderRole = (typeof LEADER_ROLES)[number];
export type LeaseRole = (typeof ROLE_LEASES)[number];

function isRole(name: string): name is LeaseRole {
  return (ROLE_LEASES as readonly string[]).includes(name);
}

/** Throws when `role` is not one of LEADER_ROLES (a programming error: it would not be reserved). */
export function assertLeaderRole(role: string): asserts role is LeaderRole {
  if (!(LEADER_ROLES as readonly string[]).includes(role)) {
    throw new Error(
      `"${role}" is not a leader role; add it to LEADER_ROLES (${LEADER_ROLES.join(", ")}), which also reserves it as a deployment name`,
    );
  }
}

/** What is wrong with a deployment name that is reserved (a phrase completing "<function>: "). */
export function reservedNameProblem(name: string): string | undefined {
  if (!isRole(name)) return undefined;
  return `deployment name "${name}" is reserved: the executor coordinates its replicas through a Lease named "${name}.<project>", which is also the Lease of a deployment of that name (reserved: ${ROLE_LEASES.join(", ")})`;
}

/** The project as part of a Lease name (a DNS-1123 subdomain). */
function projectPart(project: string): string {
  return project.toLowerCase().replace(/[^a-z0-9-]/g, "-");
}

/** The Lease of a deployment name: readable, and distinct per project. */
export function nameLease(name: string, project: string): string {
  return `${name}.${projectPart(project)}`;
}

export function roleLease(role: LeaseRole, project: string): string {
  return `${role}.${projectPart(project)}`;
}

export function replicaLease(replica: string, project: string): string {
  const role: LeaseRole = "replica";
  return `${role}.${replica}.${projectPart(project)}`;
}

/** Deployment names cannot take the Leases the coordinator keeps for its own roles. */
import { describe, expect, it } from "vitest";
import { parseArguments } from "../../src/executor/args.js";
import type { FunctionDef } from "../../src/executor/types.js";
import { deploymentName } from "../../src/executors/k8s/arguments.js";
import { AUTOSCALER_ROLE } from "../../src/executors/k8s/autoscale/autoscaler.js";
import { DRIFT_ROLE } from "../../src/executors/k8s/drift/check.js";
import {
  assertLeaderRole,
  LEADER_ROLES,
  nameLease,
  ROLE_LEASES,
  replicaLease,
  reservedNameProblem,
  roleLease,
} from "../../src/k8s/lease-names.js";

const PROJECT = "colonyos-executors";
const scale: FunctionDef = {
  name: "scale",
  description: "",
  args: [deploymentName],
  handler: async () => [],
};

describe("reserved deployment names", () => {
  it("refuses every role as a deployment name, saying why", () => {
    for (const role of ROLE_LEASES) {
      // The collision itself: a deployment of that name would share the role's Lease.
      expect(nameLease(role, PROJECT)).toBe(roleLease(role, PROJECT));
      expect(() => parseArguments(scale, [role], {})).toThrow(reservedNameProblem(role));
    }
    expect(() => parseArguments(scale, ["autoscaler"], {})).toThrow(
      `scale: deployment name "autoscaler" is reserved: the executor coordinates its replicas through a Lease named "autoscaler.<project>", which is also the Lease of a deployment of that name (reserved: ${ROLE_LEASES.join(", ")})`,
    );
    expect(parseArguments(scale, ["web"], {})).toEqual({ deploymentname: "web" });
    expect(parseArguments(scale, ["autoscaler-2"], {})).toEqual({ deploymentname: "autoscaler-2" });
  });

  it("covers every role the executor leads or keeps a Lease for", () => {
    expect(LEADER_ROLES).toContain(AUTOSCALER_ROLE);
    expect(LEADER_ROLES).toContain(DRIFT_ROLE);
    for (const role of LEADER_ROLES) expect(ROLE_LEASES).toContain(role);
    expect(() => assertLeaderRole("orphan")).toThrow(/add it to LEADER_ROLES/);
    // The budget's Lease holds reservations, not a leader.
    expect(() => assertLeaderRole("budget")).toThrow(/not a leader role/);
    // A replica's Lease starts with a reserved role, and no deployment name (no dots) reaches its shape.
    expect(replicaLease("host-1-abc", PROJECT)).toBe(`replica.host-1-abc.${PROJECT}`);
    expect(roleLease("budget", PROJECT)).toBe(`budget.${PROJECT}`);
  });
});

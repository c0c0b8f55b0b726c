import { describe, expect, it } from "vitest";
import { meaningfulLine } from "../../src/k8s/stack-errors.js";

const ENGINE_FAILURE = `code: -2
 stdout:
 stderr: Command failed with exit code 1: pulumi up --yes --skip-preview --refresh --color never --stack drift
Updating (drift):
 ~  kubernetes:apps/v1:Deployment drift updating (0s) [diff: ~spec]; error: 1 error occurred:
 ~  kubernetes:apps/v1:Deployment drift **updating failed** [diff: ~spec]; error: 1 error occurred:
    pulumi:pulumi:Stack colonyos-executors-drift running error: update failed
Diagnostics:
  kubernetes:apps/v1:Deployment (drift):
    error: 1 error occurred:
    \t* the Kubernetes API server reported that "ns/drift" failed to fully initialize or become live: Server-Side Apply field conflict detected.
    The resource managed by field manager "pulumi-kubernetes-7d916d3c" had an apply conflict
  pulumi:pulumi:Stack (colonyos-executors-drift):
    error: update failed
`;

describe("meaningfulLine", () => {
  it("takes the resource's own error from the engine's diagnostics, not the CLI's exit", () => {
    expect(meaningfulLine(ENGINE_FAILURE)).toBe(
      'the Kubernetes API server reported that "ns/drift" failed to fully initialize or become live: Server-Side Apply field conflict detected.',
    );
  });

  it("skips the wrappers without diagnostics", () => {
    expect(
      meaningfulLine(
        "stderr: Command failed with exit code 255: pulumi up\nerror: could not connect to the cluster",
      ),
    ).toBe("error: could not connect to the cluster");
    expect(meaningfulLine("stderr: Command failed with exit code 1: pulumi up")).toBe(
      "stderr: Command failed with exit code 1: pulumi up",
    );
    expect(meaningfulLine("\nsomething odd\n")).toBe("something odd");
  });
});

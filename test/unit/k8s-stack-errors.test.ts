import { describe, expect, it } from "vitest";
import { isStorageFailure, meaningfulLine } from "../../src/k8s/stack-errors.js";

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

describe("isStorageFailure", () => {
  it("knows the S3 SDK's and gocloud's failures of the state backend's storage", () => {
    // As the CLI printed them: the lock of an update (CI) and of a `pulumi stack init` (k8s-state-s3.test.ts).
    const lock =
      "error: 2 errors occurred:\n    1) operation error S3: PutObject, https response error StatusCode: 403, RequestID: 18EEB9AD69851654, HostID: cbf2, api error AccessDenied: Access Denied.";
    const init =
      'error: could not create stack: blob (key ".pulumi/locks/organization/p/web/6e.json") (code=PermissionDenied): operation error S3: PutObject';
    const file =
      'error: blob (key ".pulumi/stacks/p/web.json") (code=Unknown): write /state/.pulumi/stacks/p/web.json: no space left on device';
    for (const text of [lock, init, file]) expect(isStorageFailure(new Error(text)), text).toBe(true);
  });

  it("leaves every other failure alone", () => {
    for (const text of [
      ENGINE_FAILURE,
      "error: could not connect to the cluster",
      'unable to open state database "postgres://u:[redacted]@db/state": password authentication failed',
      "error: [409] Conflict: Another update is currently in progress.",
    ]) {
      expect(isStorageFailure(new Error(text)), text).toBe(false);
    }
    expect(isStorageFailure("operation error S3: PutObject")).toBe(false);
  });
});

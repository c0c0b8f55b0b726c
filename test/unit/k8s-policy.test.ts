import { describe, expect, it } from "vitest";
import { DeployPolicy } from "../../src/executors/k8s/policy.js";

describe("the operator's image and cmd policy", () => {
  it("allows nothing until the operator lists something, and says how to allow it", () => {
    const policy = new DeployPolicy({ images: [], cmds: [] });
    expect(policy.imageProblem("busybox:1")).toMatch(
      /no image is, until the operator lists the allowed ones in K8S_ALLOWED_IMAGES/,
    );
    expect(policy.cmdProblem("env")).toMatch(
      /no cmd is, until the operator lists the allowed ones in K8S_ALLOWED_CMDS/,
    );
  });

  it("matches images with globs: '*' within a path segment, '**' across", () => {
    const policy = new DeployPolicy({
      images: ["registry.example.com/colonyos/*", "ghcr.io/team/**", "colonyos-executors:local"],
      cmds: [],
    });
    for (const image of [
      "registry.example.com/colonyos/executors:0.1.0",
      "registry.example.com/colonyos/executors@sha256:0123456789abcdef0123456789abcdef",
      "ghcr.io/team/a/b:1",
      "colonyos-executors:local",
    ]) {
      expect(policy.imageProblem(image), image).toBeUndefined();
    }
    for (const image of [
      "busybox:1",
      "registry.example.com/colonyos/nested/evil:1",
      "registry.example.com/colonyosx/e:1",
      "evil.example.com/registry.example.com/colonyos/e:1",
      "colonyos-executors:other",
    ]) {
      expect(policy.imageProblem(image), image).toMatch(
        /is not allowed by K8S_ALLOWED_IMAGES \(registry\.example\.com\/colonyos\/\*, ghcr\.io\/team\/\*\*, colonyos-executors:local\)/,
      );
    }
  });

  it("matches whole cmd strings", () => {
    const policy = new DeployPolicy({ images: [], cmds: ["sleep", "backup", "run --mode=*"] });
    expect(policy.cmdProblem("sleep")).toBeUndefined();
    expect(policy.cmdProblem("run --mode=/a/b")).toBeUndefined();
    expect(policy.cmdProblem("env")).toMatch(
      /cmd "env" is not allowed by K8S_ALLOWED_CMDS \(sleep, backup, run --mode=\*\)/,
    );
    expect(policy.cmdProblem("sleep env")).toMatch(/not allowed/);
    expect(policy.cmdProblem("sh -c env")).toMatch(/not allowed/);
  });
});

describe("Secrets, env names, executor types and tolerations", () => {
  const IMAGE = "registry.example.com/colonyos/executors:1";
  const policy = new DeployPolicy({
    images: ["registry.example.com/colonyos/*"],
    cmds: ["sleep", "backup"],
    env: ["LOG_LEVEL"],
    executorTypes: ["team-*"],
    tolerations: ["gpu"],
    profiles: {
      "shop-backup": {
        images: ["registry.example.com/colonyos/executors:*"],
        cmds: ["backup"],
        secrets: ["shop-db"],
        env: ["DB_HOST", "DB_DATABASE"],
      },
      pull: { images: ["registry.example.com/colonyos/*"], secrets: ["registry-creds"] },
      own: { images: ["registry.example.com/colonyos/*"], cmds: [""], env: ["OWN_*"] },
    },
  });
  const use = (cmd: string, secrets: string[], env: string[], image = IMAGE) => ({
    image,
    cmd,
    secrets,
    env,
  });

  it("never lets a *-keys Secret be referenced, whatever the patterns say", () => {
    const open = new DeployPolicy({
      images: [],
      cmds: [],
      secrets: ["**"],
      profiles: { all: { images: ["**"], secrets: ["**"], env: ["*"] } },
    });
    expect(open.secretProblem("web-keys")).toMatch(
      /^Secret web-keys may never be referenced: Secrets named \*-keys hold the keys of ColonyOS executors/,
    );
    expect(open.secretProblem("k8s-executor-keys")).toMatch(/may never be referenced/);
    expect(open.secretProblem("shop-db")).toBeUndefined();
  });

  it("refuses a Secret no profile binds, and one over the ceiling", () => {
    expect(policy.secretProblem("other")).toBe(
      "Secret other may not be referenced: no profile of K8S_PROFILES binds it to an image (profiles: shop-backup, pull, own)",
    );
    const ceiling = new DeployPolicy({ images: [], cmds: [], secrets: ["registry-*"], profiles: {} });
    expect(ceiling.secretProblem("shop-db")).toBe(
      "Secret shop-db may not be referenced: it is not allowed by K8S_ALLOWED_SECRETS (registry-*)",
    );
  });

  it("binds a Secret to its profile's images and cmds, with only that profile's env beside it", () => {
    expect(policy.useProblem(use("backup", ["shop-db"], ["DB_HOST", "DB_DATABASE"]))).toBeUndefined();
    expect(policy.useProblem(use("sleep", ["shop-db"], []))).toBe(
      'Secret shop-db is not bound to image registry.example.com/colonyos/executors:1 with cmd "sleep": the profile(s) binding it (shop-backup) do not allow this image and cmd (K8S_PROFILES)',
    );
    expect(
      policy.useProblem(use("backup", ["shop-db"], [], "registry.example.com/colonyos/other:1")),
    ).toMatch(/^Secret shop-db is not bound to image registry\.example\.com\/colonyos\/other:1/);
    // The caller's own S3 endpoint or a decoy database next to the password: refused, naming the profile.
    expect(policy.useProblem(use("backup", ["shop-db"], ["DB_HOST", "AWS_S3_ENDPOINT"]))).toBe(
      "env AWS_S3_ENDPOINT may not be set beside Secret(s) shop-db: profile shop-backup allows env DB_HOST, DB_DATABASE (K8S_PROFILES)",
    );
    // Not even a name K8S_ALLOWED_ENV allows for every image: beside a Secret, the profile decides.
    expect(policy.useProblem(use("backup", ["shop-db"], ["LOG_LEVEL"]))).toMatch(
      /^env LOG_LEVEL may not be set/,
    );
    // Two Secrets must be bound by one profile.
    expect(policy.useProblem(use("backup", ["shop-db", "registry-creds"], []))).toMatch(
      /not together with the other Secrets/,
    );
    // A pull secret bound to every image of the path, for any cmd.
    expect(policy.useProblem(use("sleep", ["registry-creds"], []))).toBeUndefined();
  });

  it("allows env names from K8S_ALLOWED_ENV or a profile for the image and cmd", () => {
    expect(policy.useProblem(use("sleep", [], ["LOG_LEVEL"]))).toBeUndefined();
    expect(policy.useProblem(use("", [], ["OWN_MODE"]))).toBeUndefined();
    expect(policy.useProblem(use("backup", [], ["DB_HOST"]))).toBeUndefined();
    expect(policy.useProblem(use("sleep", [], ["OWN_MODE"]))).toBe(
      'env OWN_MODE may not be set for image registry.example.com/colonyos/executors:1 with cmd "sleep": K8S_ALLOWED_ENV (LOG_LEVEL) and the profiles for this image (pull) do not allow it',
    );
    const none = new DeployPolicy({ images: [], cmds: [] });
    expect(none.useProblem(use("sleep", [], ["A"]))).toMatch(
      /K8S_ALLOWED_ENV \(none\) and the profiles for this image \(none\)/,
    );
  });

  it("allows the deployment's own name as executor type, and others only as the operator says", () => {
    expect(policy.executorTypeProblem("web", "web")).toBeUndefined();
    expect(policy.executorTypeProblem("team-a", "web")).toBeUndefined();
    expect(policy.executorTypeProblem("backup", "web")).toBe(
      'executortype "backup" is not allowed: a deployment\'s executors take its own name (web) as their type unless K8S_ALLOWED_EXECUTOR_TYPES (team-*) allows another',
    );
  });

  it("allows tolerating only the taint keys the operator lists", () => {
    expect(policy.tolerationProblem("gpu")).toBeUndefined();
    expect(policy.tolerationProblem("dedicated")).toBe(
      "tolerations may not name the taint dedicated: it is not allowed by K8S_ALLOWED_TOLERATIONS (gpu)",
    );
  });
});

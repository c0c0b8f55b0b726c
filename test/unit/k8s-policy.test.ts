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

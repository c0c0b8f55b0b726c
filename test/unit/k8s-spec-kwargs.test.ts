import { describe, expect, it } from "vitest";
import { stuckReason } from "../../src/executors/k8s/rollout-watch.js";
import {
  parseEnv,
  parseNodeSelector,
  parseSecretEnv,
  parseTolerations,
} from "../../src/executors/k8s/spec-kwargs.js";

const allowAll = () => undefined;

describe("deploy's list-valued kwargs (';' between items, no ':')", () => {
  it("reads env and refuses the variables the executor sets itself", () => {
    expect(parseEnv("A=1;B=two words;C=")).toEqual({ value: { A: "1", B: "two words", C: "" } });
    expect(parseEnv("URL=https//x?a=b")).toEqual({ value: { URL: "https//x?a=b" } });
    expect(parseEnv("A")).toEqual({ problem: 'env item "A" must be NAME=VALUE (e.g. env:A=1;B=two)' });
    expect(parseEnv("1A=x")).toMatchObject({
      problem: expect.stringMatching(/env name "1A" must be letters/),
    });
    for (const reserved of [
      "COLONIES_SERVER_HOST",
      "COLONIES_PRVKEY",
      "COLONIES_COLONY_PRVKEY",
      "POD_NAME",
      "KUBECONFIG",
    ]) {
      expect(parseEnv(`${reserved}=evil`)).toEqual({
        problem: `env name "${reserved}" is set by the executor and cannot be given`,
      });
    }
  });

  it("refuses variables that change what the container's program loads", () => {
    for (const name of ["NODE_OPTIONS", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"]) {
      expect(parseEnv(`${name}=--inspect=0.0.0.0`)).toEqual({
        problem: `env name "${name}" changes what the container's program loads and cannot be given`,
      });
      expect(parseSecretEnv(`${name}=s/k`, allowAll)).toMatchObject({
        problem: expect.stringMatching(/changes what/),
      });
    }
  });

  it("reads secret references and asks the policy about each Secret", () => {
    expect(parseSecretEnv("DB_PASSWORD=pg-secret/password;TOKEN=api.keys/token", allowAll)).toEqual({
      value: [
        { name: "DB_PASSWORD", secret: "pg-secret", key: "password" },
        { name: "TOKEN", secret: "api.keys", key: "token" },
      ],
    });
    expect(parseSecretEnv("P=pg-secret", allowAll)).toMatchObject({
      problem: expect.stringMatching(/must refer to SECRET\/KEY/),
    });
    expect(parseSecretEnv("P=a/b/c", allowAll)).toMatchObject({
      problem: expect.stringMatching(/SECRET\/KEY/),
    });
    expect(parseSecretEnv("COLONIES_PRVKEY=x/y", allowAll)).toMatchObject({
      problem: expect.stringMatching(/set by the executor/),
    });
    expect(parseSecretEnv("P=other/key", (s) => `Secret ${s} may not be referenced`)).toEqual({
      problem: "Secret other may not be referenced",
    });
  });

  it("reads node selectors as node labels", () => {
    expect(parseNodeSelector("disk=ssd;topology.kubernetes.io/zone=a")).toEqual({
      value: { disk: "ssd", "topology.kubernetes.io/zone": "a" },
    });
    expect(parseNodeSelector("disk=s s d")).toMatchObject({
      problem: expect.stringMatching(/not a valid node label/),
    });
  });

  it("reads tolerations as KEY[=VALUE][=EFFECT]", () => {
    expect(parseTolerations("gpu=true=NoSchedule;dedicated=NoExecute;spot;team=a")).toEqual({
      value: [
        { key: "gpu", operator: "Equal", value: "true", effect: "NoSchedule" },
        { key: "dedicated", operator: "Exists", effect: "NoExecute" },
        { key: "spot", operator: "Exists" },
        { key: "team", operator: "Equal", value: "a" },
      ],
    });
    for (const key of ["node-role.kubernetes.io/control-plane", "node.kubernetes.io/unreachable"]) {
      expect(parseTolerations(`${key}=NoSchedule`)).toEqual({
        problem: `tolerations may not name Kubernetes' own taint ${key} (they keep pods off reserved nodes)`,
      });
    }
    expect(parseTolerations("a=b=c=NoSchedule")).toMatchObject({
      problem: expect.stringMatching(/KEY\[=VALUE\]\[=EFFECT\]/),
    });
    expect(parseTolerations("a=b=Sometimes")).toMatchObject({
      problem: expect.stringMatching(/EFFECT one of/),
    });
  });
});

describe("a rollout's pods that can never become ready", () => {
  const atom = (container: Record<string, unknown>) => ({
    id: "web-1",
    engine: "kubernetes",
    state: "running" as const,
    labels: {},
    containers: [{ name: "executor-0", state: "created" as const, restarts: 0, ...container }],
  });
  it("names the container and its reason", () => {
    expect(
      stuckReason(atom({ result: "startup_failure", reason: "ImagePullBackOff", message: "not found" })),
    ).toBe("pod web-1 container executor-0 cannot run: ImagePullBackOff (not found)");
    expect(
      stuckReason(
        atom({ result: "failure", reason: "CrashLoopBackOff", message: "last run: Error with exit code 1" }),
      ),
    ).toBe("pod web-1 container executor-0 cannot run: CrashLoopBackOff (last run: Error with exit code 1)");
  });
  it("leaves starting and running containers alone", () => {
    expect(stuckReason(atom({ reason: "ContainerCreating" }))).toBeUndefined();
    expect(stuckReason(atom({ state: "running" }))).toBeUndefined();
    expect(stuckReason(atom({ reason: "CrashLoopBackOff" }))).toBeUndefined(); // no last run known yet
  });
});

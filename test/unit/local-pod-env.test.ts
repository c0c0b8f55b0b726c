import type { V1Container, V1EnvVar, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { memoizedEnvSources } from "../../src/local/env-sources.js";
import {
  EnvResolutionError,
  type EnvSources,
  expandCommandAndArgs,
  resolveContainerEnv,
} from "../../src/local/pod-env.js";
import { expandVars } from "../../src/local/var-expansion.js";

// The container environment the kubelet would compute, with a fake of the one interface it reads through:
// Secrets and ConfigMaps held in maps, counting the reads.

const pod: V1Pod = {
  metadata: {
    name: "web-7d4b9-abcde",
    namespace: "team",
    uid: "0b5a6c1e-uid",
    labels: { app: "web" },
    annotations: { owner: "ops" },
  },
  spec: { nodeName: "node-000001", serviceAccountName: "runner", containers: [] },
  status: { podIP: "10.0.0.7", hostIP: "192.168.0.2", podIPs: [{ ip: "10.0.0.7" }, { ip: "fd00::7" }] },
};

function fakeSources(
  secrets: Record<string, Record<string, string>> = {},
  configMaps: Record<string, Record<string, string>> = {},
): EnvSources & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    secret: async (name) => {
      reads.push(`secret/${name}`);
      return secrets[name];
    },
    configMap: async (name) => {
      reads.push(`configmap/${name}`);
      return configMaps[name];
    },
  };
}

function resolve(env: V1EnvVar[], sources: EnvSources = fakeSources(), extra: Partial<V1Container> = {}) {
  return resolveContainerEnv({ container: { name: "main", env, ...extra }, pod, sources });
}

describe("expandVars", () => {
  const vars: Record<string, string> = { A: "alpha", EMPTY: "" };
  const expand = (input: string) => expandVars(input, (name) => vars[name]);

  it("replaces defined variables and keeps undefined references as written", () => {
    expect(expand("$(A)-$(A)/x")).toBe("alpha-alpha/x");
    expect(expand("[$(EMPTY)]")).toBe("[]");
    expect(expand("$(MISSING) and $(A)")).toBe("$(MISSING) and alpha");
  });

  it("treats $$ as an escaped $ and keeps every other $ as it is", () => {
    expect(expand("$$(A)")).toBe("$(A)");
    expect(expand("$$$(A)")).toBe("$alpha");
    expect(expand("cost: 5$ or $x, $")).toBe("cost: 5$ or $x, $");
    expect(expand("$(A unterminated")).toBe("$(A unterminated");
    expect(expand("$()")).toBe("$()");
  });
});

describe("resolveContainerEnv", () => {
  it("expands $(VAR) in literal values against the variables defined before them only", async () => {
    const env = await resolve([
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "EXECUTOR", value: "$(POD_NAME)-x" },
      { name: "EARLY", value: "$(LATE)!" },
      { name: "LATE", value: "late" },
      { name: "UNKNOWN", value: "$(NOT_DEFINED)/$(PATH)" },
      { name: "ESCAPED", value: "$$(POD_NAME)" },
    ]);
    expect(env).toEqual({
      POD_NAME: "web-7d4b9-abcde",
      EXECUTOR: "web-7d4b9-abcde-x",
      EARLY: "$(LATE)!",
      LATE: "late",
      UNKNOWN: "$(NOT_DEFINED)/$(PATH)",
      ESCAPED: "$(POD_NAME)",
    });
  });

  it("lets a later variable replace an earlier one of the same name, and gives an empty value for neither value nor valueFrom", async () => {
    const env = await resolve([
      { name: "MODE", value: "first" },
      { name: "MODE", value: "$(MODE)-second" },
      { name: "BLANK" },
    ]);
    expect(env).toEqual({ MODE: "first-second", BLANK: "" });
  });

  it("reads the downward API's pod fields", async () => {
    const fields = {
      NAME: "metadata.name",
      NAMESPACE: "metadata.namespace",
      UID: "metadata.uid",
      NODE: "spec.nodeName",
      ACCOUNT: "spec.serviceAccountName",
      POD_IP: "status.podIP",
      POD_IPS: "status.podIPs",
      HOST_IP: "status.hostIP",
      APP: "metadata.labels['app']",
      OWNER: "metadata.annotations['owner']",
      NO_LABEL: "metadata.labels['absent']",
    };
    const env = await resolve(
      Object.entries(fields).map(([name, fieldPath]) => ({ name, valueFrom: { fieldRef: { fieldPath } } })),
    );
    expect(env).toEqual({
      NAME: "web-7d4b9-abcde",
      NAMESPACE: "team",
      UID: "0b5a6c1e-uid",
      NODE: "node-000001",
      ACCOUNT: "runner",
      POD_IP: "10.0.0.7",
      POD_IPS: "10.0.0.7,fd00::7",
      HOST_IP: "192.168.0.2",
      APP: "web",
      OWNER: "ops",
      NO_LABEL: "",
    });
  });

  it("refuses field paths and sources it cannot resolve as the kubelet would", async () => {
    await expect(
      resolve([{ name: "ALL", valueFrom: { fieldRef: { fieldPath: "metadata.labels" } } }]),
    ).rejects.toThrow(/variable ALL: field "metadata.labels" is not supported/);
    await expect(
      resolve([{ name: "CPU", valueFrom: { resourceFieldRef: { resource: "limits.cpu" } } }]),
    ).rejects.toThrow(EnvResolutionError);
  });

  it("reads Secret and ConfigMap keys, and does not expand $(VAR) in what they hold", async () => {
    const sources = fakeSources({ keys: { token: "s3cr3t", raw: "$(A)" } }, { settings: { level: "debug" } });
    const env = await resolve(
      [
        { name: "A", value: "a" },
        { name: "TOKEN", valueFrom: { secretKeyRef: { name: "keys", key: "token" } } },
        { name: "RAW", valueFrom: { secretKeyRef: { name: "keys", key: "raw" } } },
        { name: "LEVEL", valueFrom: { configMapKeyRef: { name: "settings", key: "level" } } },
      ],
      sources,
    );
    expect(env).toEqual({ A: "a", TOKEN: "s3cr3t", RAW: "$(A)", LEVEL: "debug" });
  });

  it("skips an optional key or object that is missing", async () => {
    const sources = fakeSources({ keys: { token: "s3cr3t" } }, {});
    const env = await resolve(
      [
        { name: "NO_KEY", valueFrom: { secretKeyRef: { name: "keys", key: "absent", optional: true } } },
        { name: "NO_SECRET", valueFrom: { secretKeyRef: { name: "nothing", key: "k", optional: true } } },
        { name: "NO_MAP", valueFrom: { configMapKeyRef: { name: "nothing", key: "k", optional: true } } },
        { name: "KEPT", value: "$(NO_KEY)" },
      ],
      sources,
    );
    expect(env).toEqual({ KEPT: "$(NO_KEY)" });
  });

  it("fails on a missing required key or object, naming the container, variable and reference", async () => {
    const sources = fakeSources({ keys: { token: "s3cr3t" } }, { settings: {} });
    await expect(
      resolve([{ name: "T", valueFrom: { secretKeyRef: { name: "keys", key: "absent" } } }], sources),
    ).rejects.toThrow(
      new EnvResolutionError(
        'container "main" of pod "web-7d4b9-abcde", variable T: Secret "keys" has no key "absent"',
      ),
    );
    await expect(
      resolve([{ name: "T", valueFrom: { secretKeyRef: { name: "nothing", key: "k" } } }], sources),
    ).rejects.toThrow(/variable T: Secret "nothing" does not exist/);
    await expect(
      resolve([{ name: "L", valueFrom: { configMapKeyRef: { name: "settings", key: "level" } } }], sources),
    ).rejects.toThrow(/variable L: ConfigMap "settings" has no key "level"/);
  });

  it("takes envFrom first, with its prefix, for env to override and refer to", async () => {
    const sources = fakeSources({ keys: { TOKEN: "s3cr3t", USER: "svc" } }, { settings: { LEVEL: "debug" } });
    const env = await resolve(
      [
        { name: "APP_USER", value: "override" },
        { name: "GREETING", value: "hi $(APP_USER) at $(LEVEL)" },
      ],
      sources,
      {
        envFrom: [
          { secretRef: { name: "keys" }, prefix: "APP_" },
          { configMapRef: { name: "settings" } },
          { configMapRef: { name: "nothing", optional: true } },
        ],
      },
    );
    expect(env).toEqual({
      APP_TOKEN: "s3cr3t",
      APP_USER: "override",
      LEVEL: "debug",
      GREETING: "hi override at debug",
    });
    await expect(resolve([], sources, { envFrom: [{ secretRef: { name: "nothing" } }] })).rejects.toThrow(
      /Secret "nothing" \(envFrom\) does not exist/,
    );
  });
});

describe("expandCommandAndArgs", () => {
  it("expands $(VAR) in command and args with the container's environment, leaving the rest", () => {
    const container: V1Container = {
      name: "main",
      image: "busybox",
      command: ["/bin/$(TOOL)"],
      args: ["--name=$(POD_NAME)", "$(UNSET)", "$$(POD_NAME)"],
    };
    expect(expandCommandAndArgs(container, { TOOL: "executor", POD_NAME: "p-1" })).toEqual({
      name: "main",
      image: "busybox",
      command: ["/bin/executor"],
      args: ["--name=p-1", "$(UNSET)", "$(POD_NAME)"],
    });
    expect(container.args).toEqual(["--name=$(POD_NAME)", "$(UNSET)", "$$(POD_NAME)"]);
  });
});

describe("memoizedEnvSources", () => {
  it("reads each Secret and ConfigMap once for all the containers of a pod", async () => {
    const sources = fakeSources({ keys: { a: "1", b: "2" } }, { settings: { c: "3" } });
    const memoized = memoizedEnvSources(sources);
    const env: V1EnvVar[] = [
      { name: "A", valueFrom: { secretKeyRef: { name: "keys", key: "a" } } },
      { name: "B", valueFrom: { secretKeyRef: { name: "keys", key: "b" } } },
      { name: "C", valueFrom: { configMapKeyRef: { name: "settings", key: "c" } } },
    ];
    expect(await resolve(env, memoized)).toEqual({ A: "1", B: "2", C: "3" });
    expect(await resolve(env, memoized)).toEqual({ A: "1", B: "2", C: "3" });
    expect(sources.reads).toEqual(["secret/keys", "configmap/settings"]);
  });
});

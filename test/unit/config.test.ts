import { describe, expect, it } from "vitest";
import { generatePrivateKey, idOf } from "../../src/colonies/crypto.js";
import { loadRuntimeConfig } from "../../src/executor/config.js";
import { redactSecrets } from "../../src/executor/redact.js";

const key = generatePrivateKey();
const base = { COLONIES_COLONY_NAME: "dev", COLONIES_PRVKEY: key };

describe("runtime configuration", () => {
  it("uses Colonies' defaults and names", () => {
    const config = loadRuntimeConfig(base, "sleep");
    expect(config.server).toEqual({ host: "localhost", port: 50080, tls: false });
    expect(config.executorType).toBe("sleep");
    expect(config.executorPrvKey).toBe(key);
    expect(config.concurrency).toBe(1);
    expect(config.colonyPrvKey).toBeUndefined();
    expect(config.http).toBeNull();
  });

  it("reads every variable", () => {
    const colonyKey = generatePrivateKey();
    const config = loadRuntimeConfig(
      {
        ...base,
        COLONIES_SERVER_HOST: "colonies.example",
        COLONIES_SERVER_PORT: "443",
        COLONIES_TLS: "true",
        COLONIES_COLONY_PRVKEY: colonyKey,
        COLONIES_EXECUTOR_NAME: "w-1",
        COLONIES_EXECUTOR_TYPE: "nap",
        EXECUTOR_CONCURRENCY: "8",
        EXECUTOR_HTTP_PORT: "9464",
        EXECUTOR_SHUTDOWN_GRACE: "5",
      },
      "sleep",
    );
    expect(config.server).toEqual({ host: "colonies.example", port: 443, tls: true });
    expect(config.colonyPrvKey).toBe(colonyKey);
    expect(config).toMatchObject({
      executorName: "w-1",
      executorType: "nap",
      concurrency: 8,
      shutdownGraceMs: 5000,
    });
    expect(config.http).toEqual({ host: "0.0.0.0", port: 9464 });
  });

  it("generates an executor key when self-registering without one", () => {
    const config = loadRuntimeConfig({ COLONIES_COLONY_NAME: "dev", COLONIES_COLONY_PRVKEY: key }, "sleep");
    expect(idOf(config.executorPrvKey)).toMatch(/^[0-9a-f]{64}$/);
    expect(config.executorPrvKey).not.toBe(key);
  });

  it("reports every problem at once, by variable name, without echoing secrets", () => {
    let message = "";
    try {
      loadRuntimeConfig(
        {
          COLONIES_SERVER_PORT: "http",
          COLONIES_TLS: "yes",
          COLONIES_PRVKEY: "secret-value",
          EXECUTOR_CONCURRENCY: "0",
        },
        "sleep",
      );
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("COLONIES_SERVER_PORT must be a whole number");
    expect(message).toContain('COLONIES_TLS must be "true" or "false"');
    expect(message).toContain("COLONIES_COLONY_NAME is required");
    expect(message).toContain("COLONIES_PRVKEY must be 64 lowercase hex characters");
    expect(message).toContain("EXECUTOR_CONCURRENCY must be between 1 and 1024");
    expect(message).not.toContain("secret-value");
  });

  it("requires some key", () => {
    expect(() => loadRuntimeConfig({ COLONIES_COLONY_NAME: "dev" }, "sleep")).toThrow(/set COLONIES_PRVKEY/);
  });
});

describe("log redaction", () => {
  it("masks secret-looking keys at any depth and keeps the rest", () => {
    expect(
      redactSecrets({
        prvKey: "abc",
        nested: {
          COLONIES_COLONY_PRVKEY: "x",
          password: "p",
          list: [{ secretAccessKey: "s" }],
          processId: "id",
        },
      }),
    ).toEqual({
      prvKey: "[redacted]",
      nested: {
        COLONIES_COLONY_PRVKEY: "[redacted]",
        password: "[redacted]",
        list: [{ secretAccessKey: "[redacted]" }],
        processId: "id",
      },
    });
  });
});

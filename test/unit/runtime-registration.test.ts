/**
 * Registration against an in-memory Colonies (test/support/fake-colonies.ts), in fake time: self-registration
 * with documented functions, a name left registered by an earlier run (whose failed removal is logged, not
 * swallowed), the pre-registered mode, and retrying while the server is unreachable.
 */
import { describe, expect, it, vi } from "vitest";
import { generatePrivateKey, idOf } from "../../src/colonies/crypto.js";
import { ExecutorRuntime } from "../../src/executor/runtime.js";
import {
  capturingLogger,
  FakeColonies,
  fakeConfig,
  httpError,
  LEVEL,
  probe,
  startOnFake,
  until,
  useFakeRuntimeTime,
} from "../support/fake-colonies.js";

useFakeRuntimeTime();

describe("registration", () => {
  it("adds and approves the executor under its key and registers its functions with their arguments", async () => {
    const { fake, config, runtime } = await startOnFake();
    expect(runtime.executorName).toBe("test-executor");
    expect(fake.executors.get("test-executor")).toMatchObject({
      executorid: idOf(config.executorPrvKey),
      executortype: "test",
      approved: true,
    });
    expect(fake.functions.find((f) => f.funcname === "hold")).toMatchObject({
      executorname: "test-executor",
      executortype: "test",
      args: [
        { name: "ms", type: "int", required: true },
        { name: "stubborn", type: "bool", required: false },
      ],
    });
  });

  it("takes a suffixed name when the old record cannot be removed, and logs why it stayed", async () => {
    const fake = new FakeColonies();
    fake.preRegister(generatePrivateKey(), "test-executor"); // left by a run that crashed
    fake.fail("removeExecutor", httpError("removeExecutor", 500, "database is locked"));
    const { runtime, lines } = await startOnFake({}, fake);

    expect(runtime.executorName).toMatch(/^test-executor-[0-9a-f]{6}$/);
    expect(fake.callsOf("removeExecutor").map((c) => c.args[1])).toEqual(["test-executor"]);
    expect(fake.executors.has("test-executor")).toBe(true);
    const logged = lines.find((l) => l.level === LEVEL.warn && /could not remove the old record/.test(l.msg));
    expect(logged).toMatchObject({ executor: "test-executor" });
    expect(logged?.err?.message).toMatch(/HTTP 500: database is locked/);
    expect(fake.executors.get(runtime.executorName)?.approved).toBe(true);
  });

  it("removes the old record of its name when it can, and logs no removal failure", async () => {
    const fake = new FakeColonies();
    fake.preRegister(generatePrivateKey(), "test-executor");
    const { runtime, lines } = await startOnFake({}, fake);
    expect(runtime.executorName).toMatch(/^test-executor-[0-9a-f]{6}$/);
    expect(fake.executors.has("test-executor")).toBe(false);
    expect(lines.some((l) => /could not remove/.test(l.msg))).toBe(false);
  });

  it("removes the records of its name's earlier suffixed runs (their processes are re-queued at once)", async () => {
    const fake = new FakeColonies();
    fake.preRegister(generatePrivateKey(), "test-executor");
    fake.preRegister(generatePrivateKey(), "test-executor-0a1b2c");
    fake.preRegister(generatePrivateKey(), "test-executor-backup");
    const { runtime } = await startOnFake({}, fake);
    expect(runtime.executorName).toMatch(/^test-executor-[0-9a-f]{6}$/);
    expect([...fake.executors.keys()].sort()).toEqual([runtime.executorName, "test-executor-backup"].sort());
  });

  it("pre-registered, finds its name by its key and only registers its functions", async () => {
    const fake = new FakeColonies();
    const key = generatePrivateKey();
    fake.preRegister(generatePrivateKey(), "someone-else");
    fake.preRegister(key, "mine");
    const { runtime } = await startOnFake({ colonyPrvKey: undefined, executorPrvKey: key }, fake);
    expect(runtime.executorName).toBe("mine");
    expect(fake.callsOf("addExecutor")).toHaveLength(0);
    expect(new Set(fake.functions.map((f) => f.executorname))).toEqual(new Set(["mine"]));
  });

  it("retries with backoff while the server is unreachable at start-up", async () => {
    const fake = new FakeColonies();
    fake.goDown();
    vi.spyOn(Math, "random").mockReturnValue(0);
    const { instance } = probe(fake);
    const { logger } = capturingLogger();
    const runtime = new ExecutorRuntime(fakeConfig(fake), instance, logger, fake);
    let started = false;
    void runtime.start().then(() => {
      started = true;
    });
    await until("three attempts", () => fake.callsOf("addExecutor").length === 3);
    expect(started).toBe(false);
    expect(await runtime.ready()).toBe(false);
    fake.comeBack();
    await until("started", () => started);
    expect(fake.executors.get("test-executor")?.approved).toBe(true);
    const attempts = fake.callsOf("addExecutor").map((c) => c.at);
    expect(attempts.slice(1).map((at, i) => at - (attempts[i] as number))).toEqual([250, 250, 250]);
    expect(await runtime.ready()).toBe(true);
    await runtime.shutdown();
  });
});

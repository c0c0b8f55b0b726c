/**
 * The executor runtime and the sleep executor against a real Colonies server: registration (both modes),
 * function listing, assign, close, fail, logs, concurrency, shutdown with a process in flight, server restart,
 * re-registration, bad arguments, and the official CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startRuntime, submit, uniqueName, userClient, waitDone } from "../../peers/executor.js";
import { waitFor } from "../../peers/ports.js";
import { generatePrivateKey, idOf } from "../../src/colonies/crypto.js";
import { ProcessState } from "../../src/colonies/types.js";
import type { ExecutorModule } from "../../src/executor/types.js";
import { sleepExecutor } from "../../src/executors/sleep.js";

let server: ColoniesServer;

beforeAll(async () => {
  server = await startColoniesServer();
});

afterAll(async () => {
  await server?.stop();
});

/**
 * A test executor whose functions observe concurrency and write to the process log. `hold` holds its slot for
 * some milliseconds or until released (one process, or all from then on), whichever comes first; it ignores
 * its abort signal.
 */
function probeExecutor(kind: string): ExecutorModule & {
  peak: () => number;
  running: () => number;
  release: (processId?: string) => void;
} {
  let running = 0;
  let peak = 0;
  const holds = new Map<string, () => void>();
  let releasedAll = false;
  return {
    kind,
    description: "test probe",
    env: [],
    peak: () => peak,
    running: () => running,
    release: (processId) => {
      if (processId !== undefined) return holds.get(processId)?.();
      releasedAll = true;
      for (const release of holds.values()) release();
    },
    async create() {
      return {
        functions: [
          {
            name: "hold",
            description: "holds a slot for some milliseconds, or until released",
            args: [{ name: "ms", type: "int", min: 0, description: "how long at most" }],
            async handler(args, ctx) {
              running++;
              peak = Math.max(peak, running);
              await ctx.log(`holding for ${args.ms} ms`);
              await new Promise<void>((resolve) => {
                if (releasedAll) return resolve();
                const timer = setTimeout(release, args.ms as number);
                function release() {
                  clearTimeout(timer);
                  holds.delete(ctx.processId);
                  resolve();
                }
                holds.set(ctx.processId, release);
              });
              running--;
              return [running];
            },
          },
          {
            name: "explode",
            description: "throws",
            args: [],
            async handler() {
              throw new Error("boom: first line\nsecond line with details");
            },
          },
        ],
      };
    },
  };
}

describe("sleep executor on a real Colonies server", () => {
  it("registers itself with documented functions and serves sleep through the official CLI", async () => {
    const runtime = await startRuntime(server, sleepExecutor);
    try {
      const { stdout } = await server.cli(["function", "ls"]);
      expect(stdout).toContain("sleep");
      expect(stdout).toContain("milliseconds* (int)");

      const exec = await server.cli([
        "function",
        "exec",
        "--func",
        "sleep",
        "--args",
        "100",
        "--targettype",
        "sleep",
        "--wait",
        "--out",
      ]);
      expect(exec.stdout).toContain("milliseconds:100");
      expect(exec.stderr).toContain("Process finished successfully");

      const executors = await server.cli(["executor", "ls"]);
      expect(executors.stdout).toContain(runtime.executorName);
    } finally {
      await runtime.shutdown();
    }
    // removed on shutdown
    const after = await server.cli(["executor", "ls"]);
    expect(after.stdout).not.toContain(runtime.executorName);
  });

  it("fails bad calls with a specific message and keeps serving", async () => {
    const runtime = await startRuntime(server, sleepExecutor, { SLEEP_MAX_MS: "10000" });
    try {
      const cases: [unknown[], Record<string, unknown>, RegExp][] = [
        [[], {}, /sleep: missing argument milliseconds/],
        [["1", "2"], {}, /sleep: expected at most 1 argument/],
        [["abc"], {}, /argument milliseconds must be a whole number from 0 to 10000, got "abc"/],
        [["2.5"], {}, /got "2\.5"/],
        [["-1"], {}, /got "-1"/],
        [["10001"], {}, /from 0 to 10000, got "10001"/],
        [[true], {}, /got true \(boolean\)/],
        [[], { milliseconds: "5", extra: "1" }, /unknown argument extra; accepted: milliseconds/],
        [["5"], { milliseconds: "5" }, /given both by position and by name/],
      ];
      const submitted = await Promise.all(
        cases.map(([args, kwargs]) => submit(server, "sleep", "sleep", args, kwargs)),
      );
      for (const [i, process] of submitted.entries()) {
        const done = await waitDone(server, process.processid);
        expect(done.state, JSON.stringify(cases[i]?.[0])).toBe(ProcessState.FAILED);
        expect(done.errors?.[0], JSON.stringify(done)).toMatch(cases[i]?.[2] as RegExp);
      }
      const unknown = await waitDone(server, (await submit(server, "sleep", "nap", ["1"])).processid);
      expect(unknown.errors?.[0]).toBe("Unsupported function: nap; this executor offers sleep");

      // still serving, and kwargs by name work
      const ok = await waitDone(
        server,
        (await submit(server, "sleep", "sleep", [], { milliseconds: "20" })).processid,
      );
      expect(ok.state).toBe(ProcessState.SUCCESS);
      expect(ok.out).toEqual([{ milliseconds: 20 }]);
      const numeric = await waitDone(server, (await submit(server, "sleep", "sleep", [15])).processid);
      expect(numeric.out).toEqual([{ milliseconds: 15 }]);
    } finally {
      await runtime.shutdown();
    }
  });
});

describe("executor runtime", () => {
  it("runs N processes at once, logs through addlogmsg, and fails thrown errors with their first line", async () => {
    const probe = probeExecutor(uniqueName("probe"));
    const runtime = await startRuntime(server, probe, { EXECUTOR_CONCURRENCY: "4" });
    try {
      // Held until released: four must run at once however slowly they are assigned, and no fifth can start.
      const processes = await Promise.all(
        Array.from({ length: 8 }, () => submit(server, probe.kind, "hold", ["600000"])),
      );
      await waitFor("four processes running at once", async () => probe.running() === 4, 60_000);
      expect(probe.peak()).toBe(4);
      probe.release();
      const done = await Promise.all(processes.map((p) => waitDone(server, p.processid)));
      expect(done.every((p) => p.state === ProcessState.SUCCESS)).toBe(true);
      expect(probe.peak()).toBe(4); // never more than four, the second four included

      const logs = await userClient(server).getLogs(
        { colonyName: server.colonyName, processId: done[0]?.processid as string },
        server.userPrvKey,
      );
      expect(logs.map((l) => l.message)).toContain("holding for 600000 ms");

      const failed = await waitDone(server, (await submit(server, probe.kind, "explode")).processid);
      expect(failed.state).toBe(ProcessState.FAILED);
      expect(failed.errors).toEqual(["boom: first line"]);
      const details = await userClient(server).getLogs(
        { colonyName: server.colonyName, processId: failed.processid },
        server.userPrvKey,
      );
      expect(details.map((l) => l.message).join("\n")).toContain("second line with details");
    } finally {
      probe.release();
      await runtime.shutdown();
    }
  });

  it("on shutdown lets a process finish within the grace period, then fails the rest with the reason", async () => {
    const probe = probeExecutor(uniqueName("probe"));
    const runtime = await startRuntime(server, probe, {
      EXECUTOR_CONCURRENCY: "2",
      EXECUTOR_SHUTDOWN_GRACE: "1",
    });
    // Both held (ignoring their abort signal) until released; the short one is released once shutdown began.
    const short = await submit(server, probe.kind, "hold", ["600000"]);
    const long = await submit(server, probe.kind, "hold", ["600000"]);
    await waitFor("both processes running", async () => probe.running() === 2, 60_000);
    const started = Date.now();
    const stopping = runtime.shutdown("test");
    probe.release(short.processid);
    await stopping;
    // 1 s grace + at most 5 s for the aborted handler (which ignores its signal) before it is failed anyway:
    // far less than the 600 s it would hold its slot.
    expect(Date.now() - started).toBeLessThan(60_000);
    const shortDone = await waitDone(server, short.processid);
    expect(shortDone.state).toBe(ProcessState.SUCCESS);
    const longDone = await waitDone(server, long.processid);
    expect(longDone.state).toBe(ProcessState.FAILED);
    expect(longDone.errors?.[0]).toMatch(/executor shut down \(test\).*grace period/);
    probe.release(); // the handler that ignored its signal ends too; its process stays failed
  });

  it("keeps itself alive while every slot is busy, without taking more work", async () => {
    const probe = probeExecutor(uniqueName("probe"));
    const runtime = await startRuntime(server, probe, { EXECUTOR_HEARTBEAT: "1" });
    try {
      const client = userClient(server);
      const heard = async () =>
        Date.parse(
          (await client.getExecutor(server.colonyName, runtime.executorName, server.userPrvKey))
            .lastheardfromtime ?? "",
        );
      // Held until released: the only slot stays busy for as long as the test needs.
      const long = await submit(server, probe.kind, "hold", ["600000"]);
      await waitFor("the only slot to be busy", async () => probe.running() === 1, 60_000);
      const waiting = await submit(server, probe.kind, "hold", ["10"]);
      const before = await heard();
      // Nothing polls while the slot is busy: only the heartbeat (every second here) can move this.
      await waitFor(
        "the server to hear from the busy executor",
        async () => (await heard()) > before + 1000,
        30_000,
      );
      expect((await client.getProcess(waiting.processid, server.userPrvKey)).state).toBe(
        ProcessState.WAITING,
      );
      probe.release(long.processid);
      expect((await waitDone(server, long.processid)).state).toBe(ProcessState.SUCCESS);
      expect((await waitDone(server, waiting.processid)).state).toBe(ProcessState.SUCCESS);
      expect(probe.peak()).toBe(1);
    } finally {
      probe.release();
      await runtime.shutdown();
    }
  });

  it("keeps polling through a server restart and serves afterwards", async () => {
    const runtime = await startRuntime(server, sleepExecutor, { EXECUTOR_ASSIGN_TIMEOUT: "2" });
    try {
      await server.stopServer();
      await new Promise((r) => setTimeout(r, 1500));
      await server.startServer();
      const done = await waitDone(server, (await submit(server, "sleep", "sleep", ["10"])).processid, 60_000);
      expect(done.state).toBe(ProcessState.SUCCESS);
      expect(await runtime.ready()).toBe(true);
    } finally {
      await runtime.shutdown();
    }
  });

  it("registers again after a crash left its name registered", async () => {
    const name = uniqueName("sleep");
    const key = generatePrivateKey();
    const first = await startRuntime(server, sleepExecutor, {
      COLONIES_EXECUTOR_NAME: name,
      COLONIES_PRVKEY: key,
    });
    // Simulate a crash: stop polling without deregistering.
    (first as unknown as { polling: AbortController }).polling.abort();
    const second = await startRuntime(server, sleepExecutor, { COLONIES_EXECUTOR_NAME: name });
    try {
      expect(second.executorName).toMatch(new RegExp(`^${name}-[0-9a-f]{6}$`));
      const done = await waitDone(server, (await submit(server, "sleep", "sleep", ["5"])).processid);
      expect(done.state).toBe(ProcessState.SUCCESS);
      expect(done.assignedexecutorid).not.toBe(idOf(key));
    } finally {
      await second.shutdown();
    }
  });

  it("runs pre-registered with only its own key, finding its name on the server", async () => {
    const key = generatePrivateKey();
    const name = uniqueName("pre");
    const client = userClient(server);
    await client.addExecutor(
      { executorid: idOf(key), executortype: "presleep", executorname: name, colonyname: server.colonyName },
      server.colonyPrvKey,
    );
    await client.approveExecutor(server.colonyName, name, server.colonyPrvKey);
    const runtime = await startRuntime(server, sleepExecutor, {
      COLONIES_COLONY_PRVKEY: "",
      COLONIES_PRVKEY: key,
      COLONIES_EXECUTOR_NAME: "",
      COLONIES_EXECUTOR_TYPE: "presleep",
    });
    try {
      expect(runtime.executorName).toBe(name);
      const done = await waitDone(server, (await submit(server, "presleep", "sleep", ["5"])).processid);
      expect(done.state).toBe(ProcessState.SUCCESS);
      expect(done.assignedexecutorid).toBe(idOf(key));
    } finally {
      await runtime.shutdown();
    }
    // a pre-registered executor does not remove itself
    const executor = await client.getExecutor(server.colonyName, name, server.userPrvKey);
    expect(executor.executorname).toBe(name);
  });
});

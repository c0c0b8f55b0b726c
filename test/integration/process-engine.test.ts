import { chmod, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AtomAlreadyExistsError, AtomNotFoundError, LABEL } from "../../src/atoms/engine.js";
import { ProcessEngine } from "../../src/atoms/process-engine.js";

// Real child processes through /bin/sh; every call gets a signal that bounds it.
const call = () => ({ signal: AbortSignal.timeout(15_000) });
let counter = 0;
const unique = (prefix: string) => `${prefix}-${++counter}`;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Follows the logs until a line contains `needle`. */
async function untilLogged(engine: ProcessEngine, id: string, needle: string): Promise<string> {
  const stream = await engine.logs(id, { follow: true, ...call() });
  let seen = "";
  for await (const chunk of stream) {
    seen += String(chunk);
    if (seen.includes(needle)) break;
  }
  return seen;
}

describe("ProcessEngine", () => {
  const engine = new ProcessEngine({ gracePeriodMs: 5_000 });
  let workDir: string;

  beforeAll(async () => {
    workDir = await realpath(await mkdtemp(join(tmpdir(), "process-engine-")));
  });

  afterAll(async () => {
    for (const atom of await engine.list(call())) await engine.stop(atom.id, { force: true, ...call() });
    await rm(workDir, { recursive: true, force: true });
  });

  it("runs a process to exit 0: created, then running, then stopped with success", async () => {
    const id = unique("ok");
    const created = await engine.create(
      {
        name: id,
        command: "sh",
        args: ["-c", 'echo "$GREETING from $(pwd)"'],
        env: { GREETING: "hello" },
        cwd: workDir,
      },
      call(),
    );
    expect(created).toMatchObject({ id, engine: "process", state: "created", result: undefined });
    expect(created.labels[LABEL]).toBe("true");

    const done = await engine.wait(id, call());
    expect(done).toMatchObject({ state: "stopped", result: "success", exitCode: 0 });
    expect(done.containers).toEqual([
      {
        name: "main",
        state: "stopped",
        result: "success",
        exitCode: 0,
        reason: undefined,
        message: undefined,
        restarts: 0,
      },
    ]);
    expect(done.startedAt).toBeInstanceOf(Date);
    expect(done.stoppedAt?.getTime()).toBeGreaterThanOrEqual(done.startedAt?.getTime() ?? Infinity);
    expect(await text(await engine.logs(id, call()))).toBe(`hello from ${workDir}\n`);
    expect(await engine.get(id, call())).toEqual(done);
  });

  it("reports a non-zero exit as a failure with its code, stderr included in the logs", async () => {
    const id = unique("exit3");
    await engine.create({ name: id, command: "sh", args: ["-c", "echo out; echo oops >&2; exit 3"] }, call());
    expect(await engine.wait(id, call())).toMatchObject({ state: "stopped", result: "failure", exitCode: 3 });
    const logs = (await text(await engine.logs(id, call()))).split("\n");
    expect(logs).toEqual(expect.arrayContaining(["out", "oops"]));
  });

  it("reports a process killed by SIGKILL as killed (137)", async () => {
    const id = unique("sigkill");
    await engine.create({ name: id, command: "sh", args: ["-c", "kill -KILL $$"] }, call());
    expect(await engine.wait(id, call())).toMatchObject({
      result: "killed",
      exitCode: 137,
      reason: "SIGKILL",
    });
  });

  it("stops a running process with SIGTERM: stopping, then terminated (143)", async () => {
    const id = unique("sleep");
    await engine.create({ name: id, command: "sleep", args: ["60"] }, call());
    await untilRunning(engine, id);
    await engine.stop(id, call());
    expect((await engine.get(id, call())).state).toBe("stopping");
    expect(await engine.wait(id, call())).toMatchObject({
      state: "stopped",
      result: "terminated",
      exitCode: 143,
      reason: "SIGTERM",
    });
  });

  it("reports a missing binary as a startup failure (127, ENOENT)", async () => {
    const id = unique("missing");
    await engine.create({ name: id, command: join(workDir, "no-such-binary") }, call());
    const done = await engine.wait(id, call());
    expect(done).toMatchObject({
      state: "stopped",
      result: "startup_failure",
      exitCode: 127,
      reason: "ENOENT",
    });
    expect(done.message).toContain("no-such-binary");
    expect(done.startedAt).toBeUndefined();
  });

  it("reports a file that cannot be executed as a startup failure", async () => {
    const id = unique("noexec");
    const file = join(workDir, "not-executable.sh");
    await writeFile(file, "#!/bin/sh\necho never\n");
    await chmod(file, 0o644);
    await engine.create({ name: id, command: file }, call());
    expect(await engine.wait(id, call())).toMatchObject({ state: "stopped", result: "startup_failure" });
  });

  it("escalates to SIGKILL when a process ignores SIGTERM for the grace period", async () => {
    const id = unique("stubborn");
    await engine.create(
      { name: id, command: "sh", args: ["-c", 'trap "" TERM; echo ready; while :; do sleep 0.1; done'] },
      call(),
    );
    await untilLogged(engine, id, "ready");
    const stoppedAt = Date.now();
    await engine.stop(id, { gracePeriodMs: 500, ...call() });
    const done = await engine.wait(id, call());
    expect(done).toMatchObject({ result: "killed", exitCode: 137, reason: "SIGKILL" });
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(450);
  });

  it("stops the whole process group, not only its leader", async () => {
    const id = unique("group");
    await engine.create({ name: id, command: "sh", args: ["-c", "sleep 60 & echo child=$!; wait"] }, call());
    const pid = Number(/child=(\d+)/.exec(await untilLogged(engine, id, "\n"))?.[1]);
    expect(isAlive(pid)).toBe(true);
    await engine.stop(id, { force: true, ...call() });
    await engine.wait(id, call());
    await expect.poll(() => isAlive(pid), { timeout: 5_000 }).toBe(false);
  });

  it("keeps bounded, timestamped logs after exit, with tail and since", async () => {
    const small = new ProcessEngine({ logLimits: { maxLines: 10 } });
    const id = unique("seq");
    const before = new Date();
    await small.create({ name: id, command: "sh", args: ["-c", "seq 1 100"] }, call());
    await small.wait(id, call());

    const all = await text(await small.logs(id, call()));
    expect(all).toBe(`${Array.from({ length: 10 }, (_, i) => 91 + i).join("\n")}\n`);
    expect(await text(await small.logs(id, { tail: 2, ...call() }))).toBe("99\n100\n");
    expect(await text(await small.logs(id, { since: new Date(Date.now() + 60_000), ...call() }))).toBe("");

    const stamped = (await text(await small.logs(id, { tail: 1, timestamps: true, ...call() }))).trimEnd();
    const [time, line] = stamped.split(" ");
    expect(line).toBe("100");
    expect(new Date(time ?? "").getTime()).toBeGreaterThanOrEqual(before.getTime());
  });

  it("follows logs while the process runs and ends the stream when it exits", async () => {
    const id = unique("follow");
    await engine.create({ name: id, command: "sh", args: ["-c", "echo one; sleep 0.3; echo two"] }, call());
    const followed = await text(await engine.logs(id, { follow: true, ...call() }));
    expect(followed).toBe("one\ntwo\n");
  });

  it("cancels a wait without touching the process", async () => {
    const id = unique("wait");
    await engine.create({ name: id, command: "sleep", args: ["60"] }, call());
    await untilRunning(engine, id);
    const controller = new AbortController();
    const waiting = engine.wait(id, { signal: controller.signal });
    controller.abort(new Error("caller gave up"));
    await expect(waiting).rejects.toThrow("caller gave up");
    expect((await engine.get(id, call())).state).toBe("running");
    await engine.stop(id, { force: true, ...call() });
    expect(await engine.wait(id, call())).toMatchObject({ result: "killed" });
  });

  it("cancels a followed log stream with the caller's reason", async () => {
    const id = unique("follow-cancel");
    await engine.create({ name: id, command: "sleep", args: ["60"] }, call());
    const controller = new AbortController();
    const stream = await engine.logs(id, { follow: true, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("enough logs")), 100);
    await expect(text(stream)).rejects.toThrow("enough logs");
    await engine.stop(id, { force: true, ...call() });
  });

  it("lists by label, rejects duplicates and unknown ids, and treats stopping a gone atom as done", async () => {
    const id = unique("labelled");
    await engine.create({ name: id, command: "true", labels: { role: "probe" } }, call());
    await engine.wait(id, call());
    expect((await engine.list({ labels: { role: "probe" }, ...call() })).map((a) => a.id)).toEqual([id]);
    expect(await engine.list({ labels: { role: "nobody" }, ...call() })).toEqual([]);
    await expect(engine.create({ name: id, command: "true" }, call())).rejects.toBeInstanceOf(
      AtomAlreadyExistsError,
    );
    await expect(engine.get("never-created", call())).rejects.toBeInstanceOf(AtomNotFoundError);
    await expect(engine.stop(id, call())).resolves.toBeUndefined();
    await expect(engine.stop("never-created", call())).resolves.toBeUndefined();
  });

  it("forgets the oldest stopped atoms beyond keepStopped", async () => {
    const forgetful = new ProcessEngine({ keepStopped: 2 });
    for (const name of ["a", "b", "c"]) {
      await forgetful.create({ name, command: "true" }, call());
      await forgetful.wait(name, call());
    }
    expect((await forgetful.list(call())).map((a) => a.id)).toEqual(["b", "c"]);
  });
});

async function untilRunning(engine: ProcessEngine, id: string): Promise<void> {
  await expect.poll(async () => (await engine.get(id, call())).state, { timeout: 5_000 }).toBe("running");
}

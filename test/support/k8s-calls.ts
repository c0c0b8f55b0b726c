/** Calls of the k8s executor's functions through a real Colonies server, as a colony user submits them. */
import { expect } from "vitest";
import type { ColoniesServer } from "../../peers/colonies-server.js";
import { submit, waitDone } from "../../peers/executor.js";
import { type Process, ProcessState } from "../../src/colonies/types.js";

export function k8sCalls(server: () => ColoniesServer, executorType = "k8s") {
  /** Submits a call and waits until it is closed or failed. */
  async function call(
    func: string,
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
  ): Promise<Process> {
    return waitDone(server(), (await submit(server(), executorType, func, args, kwargs)).processid, 300_000);
  }
  /** A call that must succeed; its output. */
  async function ok(
    func: string,
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
  ): Promise<unknown[]> {
    const done = await call(func, args, kwargs);
    expect(done.state, `${func}(${args.join(", ")}) failed: ${done.errors?.join("; ")}`).toBe(
      ProcessState.SUCCESS,
    );
    return done.out ?? [];
  }
  return { call, ok };
}

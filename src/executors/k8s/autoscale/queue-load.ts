/**
 * The work waiting in Colonies for a deployment's executors: processes of its executor type that are WAITING,
 * and those RUNNING (each occupies an executor). `getprocessesmsg` returns at most 100 per state, so loads above
 * that count as 100: more than enough to size any deployment whose max × executors per pod × per_executor is
 * below it, and the most a larger one is asked to grow for at once.
 */
import type { ColoniesClient } from "../../../colonies/client.js";
import { ProcessState } from "../../../colonies/types.js";

export interface QueueLoad {
  waiting: number;
  running: number;
}

export type LoadProbe = (executorType: string, signal?: AbortSignal) => Promise<QueueLoad>;

/** The most processes one query returns. */
export const LOAD_CAP = 100;

export function coloniesLoad(client: ColoniesClient, colonyName: string, prvKey: string): LoadProbe {
  const count = async (executorType: string, state: 0 | 1, signal?: AbortSignal) =>
    (
      await client.getProcesses(
        { colonyName, state, executorType, count: LOAD_CAP },
        prvKey,
        signal ? { signal } : undefined,
      )
    ).length;
  return async (executorType, signal) => {
    const [waiting, running] = await Promise.all([
      count(executorType, ProcessState.WAITING, signal),
      count(executorType, ProcessState.RUNNING, signal),
    ]);
    return { waiting, running };
  };
}

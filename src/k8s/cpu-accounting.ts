/**
 * Per-process accounting of this process's children (Linux /proc): what an operation's `pulumi` and provider
 * processes cost in CPU-seconds and memory.
 * - `reapedCpuSeconds()`: user + system time of the children this process has reaped, and of the ones they
 *   reaped (a provider is reaped by its `pulumi`): exact, for a window in which only the measured work ran;
 * - `ChildUsage`: samples every descendant's /proc/<pid>/stat and status until stopped: per process its CPU time
 *   (the last sample before it exited, so a slight undercount) and peak RSS, and the peak of the summed RSS of
 *   the processes whose command line matches (by default, pulumi's and its plugins'), and of their private
 *   (anonymous) memory alone: RSS also counts the mapped pages of their binaries, which every process running
 *   the same binary shares.
 * /proc is read synchronously: its files are made by the kernel on read and never block, and fs/promises costs
 * ~25× the CPU for them (a pass over 40 processes: 40 ms against 1.7 ms), which a sampler running beside the
 * measured work (in the same process, during a burst of updates) would take from it.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux architecture Node runs on). */
const TICKS = 100;

export interface StatFields {
  pid: number;
  ppid: number;
  /** utime + stime, in seconds. */
  cpuSeconds: number;
  /** cutime + cstime (reaped children), in seconds. */
  childrenCpuSeconds: number;
}

/** The fields of a /proc/<pid>/stat line that matter here (the command may hold spaces and parentheses). */
export function parseStat(line: string): StatFields {
  const close = line.lastIndexOf(")");
  const pid = Number(line.slice(0, line.indexOf(" ")));
  // Fields after the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
  const f = line
    .slice(close + 2)
    .trim()
    .split(" ");
  const n = (i: number) => Number(f[i - 3]);
  return {
    pid,
    ppid: n(4),
    cpuSeconds: (n(14) + n(15)) / TICKS,
    childrenCpuSeconds: (n(16) + n(17)) / TICKS,
  };
}

/** CPU-seconds of the children this process reaped (and of the ones they reaped), so far. */
export async function reapedCpuSeconds(): Promise<number> {
  return parseStat(readFileSync("/proc/self/stat", "utf8")).childrenCpuSeconds;
}

export interface ProcessUsage {
  pid: number;
  command: string;
  cpuSeconds: number;
  peakRssMb: number;
}

export interface UsageReport {
  processes: ProcessUsage[];
  /** Peak over the samples of the summed RSS of the matching processes, in MB. */
  peakRssMb: number;
  /** The same for their private memory (RssAnon: heap, stacks), in MB. */
  peakPrivateMb: number;
  /** CPU-seconds of the processes this process reaped during the window (exact). */
  reapedCpuSeconds: number;
}

/** A /proc file's text, or undefined once the process is gone. */
function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function entries(dir: string): string[] | undefined {
  try {
    return readdirSync(dir);
  } catch {
    return undefined;
  }
}

/** The children of a process: what each of its threads spawned (/proc/<pid>/task/<tid>/children). */
function childrenOf(pid: number): number[] | undefined {
  const tasks = entries(`/proc/${pid}/task`);
  if (!tasks) return [];
  const lists = tasks.map((tid) => readOr(`/proc/${pid}/task/${tid}/children`));
  // No such file at all: a kernel without CONFIG_PROC_CHILDREN (or the process is gone).
  if (lists.every((list) => list === undefined)) return undefined;
  return lists.flatMap((list) => (list ?? "").split(" ").filter(Boolean).map(Number));
}

/** This process's descendants (pid → stat): down the children lists, else from one pass over /proc. */
function descendants(root: number): Map<number, StatFields> {
  const family = new Map<number, StatFields>();
  const rootChildren = childrenOf(root);
  if (rootChildren) {
    const queue = [...rootChildren];
    for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
      const line = readOr(`/proc/${pid}/stat`);
      if (!line) continue;
      family.set(pid, parseStat(line));
      queue.push(...(childrenOf(pid) ?? []));
    }
    return family;
  }
  const stats: StatFields[] = [];
  for (const entry of entries("/proc") ?? []) {
    if (!/^\d+$/.test(entry)) continue;
    const line = readOr(`/proc/${entry}/stat`);
    if (line) stats.push(parseStat(line));
  }
  const parents = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const stat of stats) {
      if (parents.has(stat.ppid) && !parents.has(stat.pid)) {
        parents.add(stat.pid);
        family.set(stat.pid, stat);
        grew = true;
      }
    }
  }
  return family;
}

/** Samples this process's descendants from `start()` until `stop()`. */
export class ChildUsage {
  private readonly seen = new Map<number, ProcessUsage>();
  private peak = 0;
  private peakPrivate = 0;
  private timer: NodeJS.Timeout | undefined;
  private reapedAtStart = 0;

  constructor(
    private readonly matches: RegExp = /pulumi/,
    private readonly intervalMs = 50,
  ) {}

  async start(): Promise<void> {
    this.reapedAtStart = await reapedCpuSeconds();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  async stop(): Promise<UsageReport> {
    clearInterval(this.timer);
    return {
      processes: [...this.seen.values()],
      peakRssMb: this.peak,
      peakPrivateMb: this.peakPrivate,
      reapedCpuSeconds: (await reapedCpuSeconds()) - this.reapedAtStart,
    };
  }

  private sample(): void {
    let sum = 0;
    let privateSum = 0;
    for (const [pid, stat] of descendants(process.pid)) {
      const status = readOr(`/proc/${pid}/status`);
      const cmdline = readOr(`/proc/${pid}/cmdline`);
      if (status === undefined || cmdline === undefined) continue;
      const command = cmdline.split("\0").filter(Boolean).join(" ");
      if (!this.matches.test(command)) continue;
      const rssMb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
      sum += rssMb;
      privateSum += Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
      const usage = this.seen.get(pid) ?? { pid, command, cpuSeconds: 0, peakRssMb: 0 };
      usage.cpuSeconds = Math.max(usage.cpuSeconds, stat.cpuSeconds);
      usage.peakRssMb = Math.max(usage.peakRssMb, rssMb);
      this.seen.set(pid, usage);
    }
    this.peak = Math.max(this.peak, sum);
    this.peakPrivate = Math.max(this.peakPrivate, privateSum);
  }
}

/** Measures `work`: its wall time, and what its children cost (see ChildUsage). */
export async function measureChildren<T>(
  work: () => Promise<T>,
  matches?: RegExp,
): Promise<{ result: T; ms: number; usage: UsageReport }> {
  const usage = new ChildUsage(matches);
  await usage.start();
  const started = performance.now();
  try {
    const result = await work();
    return { result, ms: performance.now() - started, usage: await usage.stop() };
  } catch (error) {
    await usage.stop();
    throw error;
  }
}

/** A one-line account of where the CPU went: each kind of process (first two words), its CPU-s and peak RSS. */
export function describeUsage(report: UsageReport): string {
  const kinds = new Map<string, { cpu: number; rss: number; n: number }>();
  for (const p of report.processes) {
    const words = p.command.split(" ");
    const kind = [words[0]?.replace(/.*\//, ""), words[1]?.startsWith("127.") ? "" : words[1]]
      .filter(Boolean)
      .join(" ");
    const k = kinds.get(kind) ?? { cpu: 0, rss: 0, n: 0 };
    k.cpu += p.cpuSeconds;
    k.rss = Math.max(k.rss, p.peakRssMb);
    k.n += 1;
    kinds.set(kind, k);
  }
  return [...kinds.entries()]
    .map(
      ([kind, k]) => `${kind}${k.n > 1 ? ` x${k.n}` : ""} ${k.cpu.toFixed(2)} CPU-s ${k.rss.toFixed(0)} MB`,
    )
    .join("; ");
}

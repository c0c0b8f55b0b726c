import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { describeUsage, measureChildren, parseStat } from "../../src/k8s/cpu-accounting.js";

describe("per-process accounting", () => {
  it("parses /proc/<pid>/stat even when the command holds spaces and parentheses", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    // state ppid ... utime(14)=250 stime(15)=50 cutime(16)=100 cstime(17)=20
    fields[0] = "S";
    fields[1] = "4242";
    fields[11] = "250";
    fields[12] = "50";
    fields[13] = "100";
    fields[14] = "20";
    const stat = parseStat(`1234 (pulumi (up) x) ${fields.join(" ")}`);
    expect(stat).toEqual({ pid: 1234, ppid: 4242, cpuSeconds: 3, childrenCpuSeconds: 1.2 });
  });

  it.runIf(process.platform === "linux")(
    "counts a child's CPU-seconds and memory while it runs, and exactly once it is reaped",
    async () => {
      const { usage } = await measureChildren(
        () =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(process.execPath, [
              "-e",
              // Busy until it has used 0.4 CPU-s, however loaded the machine is.
              "const a = Buffer.alloc(64 << 20, 1); while (process.cpuUsage().user < 400000) a[0]++;",
              "busy-child",
            ]);
            child.on("error", reject);
            child.on("exit", () => resolve());
          }),
        /busy-child/,
      );
      expect(usage.processes).toHaveLength(1);
      expect(usage.processes[0]?.cpuSeconds).toBeGreaterThan(0.1);
      expect(usage.reapedCpuSeconds).toBeGreaterThanOrEqual(0.4);
      expect(usage.peakRssMb).toBeGreaterThan(60);
      // Its 64 MB buffer is private memory; Node's binary pages count in RSS only.
      expect(usage.peakPrivateMb).toBeGreaterThan(60);
      expect(usage.peakPrivateMb).toBeLessThan(usage.peakRssMb);
      expect(usage.reapedCpuSeconds).toBeGreaterThanOrEqual(usage.processes[0]?.cpuSeconds ?? 0);
      expect(describeUsage(usage)).toMatch(/CPU-s/);
    },
  );
});

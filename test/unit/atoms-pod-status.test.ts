import type { V1ContainerState, V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { type AtomResult, type AtomState, RESULTS, STATES } from "../../src/atoms/engine.js";
import { podToAtom, STARTUP_FAILURE_REASONS } from "../../src/atoms/pod-status.js";

const CREATED = "2025-01-01T10:00:00Z";

function status(name: string, state: V1ContainerState, restartCount = 0): V1ContainerStatus {
  return { name, image: "busybox", imageID: "", ready: false, restartCount, state };
}

function pod(
  phase: string | undefined,
  statuses: V1ContainerStatus[] = [],
  extra: { reason?: string; message?: string; deleting?: boolean; containers?: string[] } = {},
): V1Pod {
  const names = extra.containers ?? (statuses.length ? statuses.map((s) => s.name) : ["main"]);
  return {
    metadata: {
      name: "p",
      labels: { "colonyos.io/atom": "true" },
      creationTimestamp: new Date(CREATED),
      deletionTimestamp: extra.deleting ? new Date("2025-01-01T10:05:00Z") : undefined,
    },
    spec: { containers: names.map((name) => ({ name, image: "busybox" })) },
    status: { phase, reason: extra.reason, message: extra.message, containerStatuses: statuses },
  };
}

const running: V1ContainerState = { running: { startedAt: new Date("2025-01-01T10:01:00Z") } };
const waiting = (reason: string, message = `${reason} message`): V1ContainerState => ({
  waiting: { reason, message },
});
const exited = (exitCode: number, reason = exitCode === 0 ? "Completed" : "Error"): V1ContainerState => ({
  terminated: {
    exitCode,
    reason,
    startedAt: new Date("2025-01-01T10:01:00Z"),
    finishedAt: new Date("2025-01-01T10:02:00Z"),
  },
});

interface Row {
  name: string;
  pod: V1Pod;
  gone?: boolean;
  state: AtomState;
  result: AtomResult | undefined;
  exitCode?: number;
  reason?: string;
}

const rows: Row[] = [
  { name: "pending, no status yet", pod: pod("Pending"), state: "created", result: undefined },
  {
    name: "pending, container creating",
    pod: pod("Pending", [status("main", waiting("ContainerCreating"))]),
    state: "created",
    result: undefined,
  },
  {
    name: "running",
    pod: pod("Running", [status("main", running)]),
    state: "running",
    result: undefined,
  },
  {
    name: "running in CrashLoopBackOff is not yet a result",
    pod: pod("Running", [status("main", waiting("CrashLoopBackOff"), 4)]),
    state: "running",
    result: undefined,
  },
  {
    name: "crash-looping after an OOM kill: the last run decides (resource_failure)",
    pod: pod("Running", [
      { ...status("main", waiting("CrashLoopBackOff"), 5), lastState: exited(137, "OOMKilled") },
    ]),
    state: "running",
    result: "resource_failure",
    exitCode: 137,
    reason: "CrashLoopBackOff",
  },
  {
    name: "crash-looping after exit 1 (e.g. a bad key): failure",
    pod: pod("Running", [{ ...status("main", waiting("CrashLoopBackOff"), 3), lastState: exited(1) }]),
    state: "running",
    result: "failure",
    exitCode: 1,
    reason: "CrashLoopBackOff",
  },
  {
    name: "running, a container exited non-zero and will restart",
    pod: pod("Running", [status("main", exited(1), 1)]),
    state: "running",
    result: undefined,
  },
  {
    name: "succeeded, exit 0",
    pod: pod("Succeeded", [status("main", exited(0))]),
    state: "stopped",
    result: "success",
    exitCode: 0,
    reason: "Completed",
  },
  {
    name: "failed, exit 1",
    pod: pod("Failed", [status("main", exited(1))]),
    state: "stopped",
    result: "failure",
    exitCode: 1,
  },
  {
    name: "failed, exit 3 (any other non-zero code is a failure, not unknown)",
    pod: pod("Failed", [status("main", exited(3))]),
    state: "stopped",
    result: "failure",
    exitCode: 3,
  },
  {
    name: "failed, exit 137 (SIGKILL)",
    pod: pod("Failed", [status("main", exited(137))]),
    state: "stopped",
    result: "killed",
    exitCode: 137,
  },
  {
    name: "failed, exit 143 (SIGTERM)",
    pod: pod("Failed", [status("main", exited(143))]),
    state: "stopped",
    result: "terminated",
    exitCode: 143,
  },
  {
    name: "failed, exit 126 (command cannot execute)",
    pod: pod("Failed", [status("main", exited(126, "ContainerCannotRun"))]),
    state: "stopped",
    result: "startup_failure",
    exitCode: 126,
  },
  {
    name: "failed, exit 127 (command not found)",
    pod: pod("Failed", [status("main", exited(127, "ContainerCannotRun"))]),
    state: "stopped",
    result: "startup_failure",
    exitCode: 127,
  },
  {
    name: "terminated OOMKilled (exit 137) is a resource failure, not a kill",
    pod: pod("Failed", [status("main", exited(137, "OOMKilled"))]),
    state: "stopped",
    result: "resource_failure",
    exitCode: 137,
    reason: "OOMKilled",
  },
  {
    name: "evicted pod without container statuses",
    pod: pod("Failed", [], { reason: "Evicted", message: "The node was low on resource: memory." }),
    state: "stopped",
    result: "resource_failure",
    reason: "Evicted",
  },
  {
    name: "failed before any container reported (phase decides)",
    pod: pod("Failed", [], { reason: "UnexpectedAdmissionError" }),
    state: "stopped",
    result: "failure",
    reason: "UnexpectedAdmissionError",
  },
  {
    name: "succeeded without container statuses (phase decides)",
    pod: pod("Succeeded"),
    state: "stopped",
    result: "success",
  },
  ...[...STARTUP_FAILURE_REASONS].map(
    (reason): Row => ({
      name: `pending, waiting ${reason}: a startup failure before the pod stops`,
      pod: pod("Pending", [status("main", waiting(reason))]),
      state: "created",
      result: "startup_failure",
      reason,
    }),
  ),
  {
    name: "phase Unknown (node lost)",
    pod: pod("Unknown", [status("main", running)]),
    state: "invalid",
    result: undefined,
  },
  { name: "no phase at all", pod: pod(undefined), state: "invalid", result: undefined },
  {
    name: "deletionTimestamp on a running pod",
    pod: pod("Running", [status("main", running)], { deleting: true }),
    state: "deleting",
    result: undefined,
  },
  {
    name: "deletionTimestamp on a pod that cannot pull its image",
    pod: pod("Pending", [status("main", waiting("ImagePullBackOff"))], { deleting: true }),
    state: "deleting",
    result: "startup_failure",
    reason: "ImagePullBackOff",
  },
  {
    name: "gone after it succeeded",
    pod: pod("Succeeded", [status("main", exited(0))]),
    gone: true,
    state: "deleted",
    result: "success",
    exitCode: 0,
  },
  {
    name: "gone while running: nobody saw how it ended",
    pod: pod("Running", [status("main", running)]),
    gone: true,
    state: "deleted",
    result: "unknown",
  },
];

describe("podToAtom", () => {
  it.each(rows)("$name → $state / $result", (row) => {
    const atom = podToAtom(row.pod, { gone: row.gone });
    expect(atom.state).toBe(row.state);
    expect(atom.result).toBe(row.result);
    expect(atom.exitCode).toBe(row.exitCode);
    if (row.reason !== undefined) expect(atom.reason).toBe(row.reason);
  });

  it("covers every result and every state but stopping, which pods never report", () => {
    // Kubernetes has no stop apart from deletion: a stopped pod is "deleting". The process engine reports stopping.
    expect(new Set(rows.map((r) => r.state))).toEqual(new Set(STATES.filter((s) => s !== "stopping")));
    expect(new Set(rows.map((r) => r.result).filter((r) => r !== undefined))).toEqual(new Set(RESULTS));
  });

  it("reads container statuses by name, whatever their order, and keeps each one's details", () => {
    const p = pod(
      "Failed",
      [
        status("sidecar", exited(143), 2),
        {
          ...status("main", exited(3)),
          state: { terminated: { exitCode: 3, reason: "Error", message: "boom" } },
        },
      ],
      { containers: ["main", "sidecar"] },
    );
    const atom = podToAtom(p);
    // The job's own failure explains the SIGTERM its sidecar got afterwards.
    expect(atom.result).toBe("failure");
    expect(atom.exitCode).toBe(3);
    expect(atom.message).toBe("boom");
    expect(atom.containers).toEqual([
      {
        name: "main",
        state: "stopped",
        result: "failure",
        exitCode: 3,
        reason: "Error",
        message: "boom",
        restarts: 0,
      },
      {
        name: "sidecar",
        state: "stopped",
        result: "terminated",
        exitCode: 143,
        reason: "Error",
        message: undefined,
        restarts: 2,
      },
    ]);
  });

  it("lets an out-of-memory container decide over the kills that follow it", () => {
    const p = pod("Failed", [status("main", exited(137, "OOMKilled")), status("sidecar", exited(143))]);
    const atom = podToAtom(p);
    expect(atom.result).toBe("resource_failure");
    expect(atom.reason).toBe("OOMKilled");
  });

  it("reports a stopped pod with one container still unaccounted for as unknown, not success", () => {
    const atom = podToAtom(pod("Failed", [status("main", exited(0)), status("sidecar", running)]));
    expect(atom.result).toBe("unknown");
  });

  it("takes a never-starting init container as a startup failure", () => {
    const p = pod("Pending", [status("main", waiting("PodInitializing"))]);
    p.spec = {
      ...p.spec,
      containers: p.spec?.containers ?? [],
      initContainers: [{ name: "init", image: "x" }],
    };
    p.status = { ...p.status, initContainerStatuses: [status("init", waiting("ErrImagePull"))] };
    const atom = podToAtom(p);
    expect(atom).toMatchObject({ state: "created", result: "startup_failure", reason: "ErrImagePull" });
    expect(atom.containers.map((c) => c.name)).toEqual(["main"]);
  });

  it("reads times from typed Dates and from raw watch JSON alike", () => {
    const typed = pod("Succeeded", [status("main", exited(0))]);
    const raw = JSON.parse(JSON.stringify(typed)) as V1Pod;
    for (const p of [typed, raw]) {
      const atom = podToAtom(p);
      expect(atom.createdAt?.toISOString()).toBe("2025-01-01T10:00:00.000Z");
      expect(atom.startedAt?.toISOString()).toBe("2025-01-01T10:01:00.000Z");
      expect(atom.stoppedAt?.toISOString()).toBe("2025-01-01T10:02:00.000Z");
    }
  });

  it("has no stop time while running, and keeps id, engine and labels", () => {
    const atom = podToAtom(pod("Running", [status("main", running)]));
    expect(atom).toMatchObject({ id: "p", engine: "kubernetes", labels: { "colonyos.io/atom": "true" } });
    expect(atom.startedAt?.toISOString()).toBe("2025-01-01T10:01:00.000Z");
    expect(atom.stoppedAt).toBeUndefined();
  });
});

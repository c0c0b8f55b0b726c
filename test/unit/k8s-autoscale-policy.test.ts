import { describe, expect, it } from "vitest";
import {
  type AutoscalePolicy,
  DECISIONS_KEPT,
  isAutoscalePolicy,
  podsFor,
  Stabilizer,
  withDecision,
} from "../../src/executors/k8s/autoscale/policy.js";

const policy: AutoscalePolicy = { min: 0, max: 4, perExecutor: 1, cooldownSeconds: 30 };

describe("podsFor", () => {
  it("asks for enough executors for the load, within [min, max]", () => {
    expect(podsFor(0, policy, 1)).toBe(0);
    expect(podsFor(1, policy, 1)).toBe(1);
    expect(podsFor(3, policy, 1)).toBe(3);
    expect(podsFor(40, policy, 1)).toBe(4);
    expect(podsFor(5, policy, 2)).toBe(3); // two executors per pod
    expect(podsFor(5, { ...policy, perExecutor: 5 }, 1)).toBe(1);
    expect(podsFor(0, { ...policy, min: 2 }, 1)).toBe(2);
  });
});

describe("isAutoscalePolicy", () => {
  it("accepts only whole, ordered bounds", () => {
    expect(isAutoscalePolicy(policy)).toBe(true);
    expect(isAutoscalePolicy({ ...policy, min: 5 })).toBe(false);
    expect(isAutoscalePolicy({ ...policy, max: 0, min: 0 })).toBe(false);
    expect(isAutoscalePolicy({ ...policy, perExecutor: 0 })).toBe(false);
    expect(isAutoscalePolicy({ ...policy, cooldownSeconds: 1.5 })).toBe(false);
    expect(isAutoscalePolicy("{}")).toBe(false);
    expect(isAutoscalePolicy(null)).toBe(false);
  });
});

describe("Stabilizer", () => {
  it("follows a rise at once", () => {
    const s = new Stabilizer();
    expect(s.next(0, 4, 30, 0)).toBe(4);
  });

  it("shrinks only after a whole cooldown, to the highest recommendation in it", () => {
    const s = new Stabilizer();
    let pods = s.next(0, 4, 30, 0);
    // The queue drains: recommendations fall, the size holds for the cooldown.
    for (const t of [5, 10, 20, 29]) {
      pods = s.next(pods, t < 20 ? 2 : 0, 30, t * 1000);
      expect(pods, `at ${t} s`).toBe(4);
    }
    // At 31 s the window [1 s, 31 s] still saw a 2: the size goes to 2, not to 0.
    pods = s.next(pods, 0, 30, 31_000);
    expect(pods).toBe(2);
    // Once only zeros are in the window, it reaches the minimum.
    pods = s.next(pods, 0, 30, 51_000);
    expect(pods).toBe(0);
  });

  it("does not flap when the load dips between bursts", () => {
    const s = new Stabilizer();
    let pods = 0;
    const sizes: number[] = [];
    for (let t = 0; t < 120; t += 5) {
      const recommended = t % 20 < 10 ? 4 : 0; // bursts every 20 s
      pods = s.next(pods, recommended, 30, t * 1000);
      sizes.push(pods);
    }
    expect(new Set(sizes.slice(1))).toEqual(new Set([4]));
  });

  it("shrinks at the next look with no cooldown", () => {
    const s = new Stabilizer();
    expect(s.next(3, 1, 0, 0)).toBe(1);
  });

  it("starts over after a reset", () => {
    const s = new Stabilizer();
    s.next(0, 4, 30, 0);
    s.reset();
    expect(s.next(4, 0, 30, 60_000)).toBe(4); // a new cooldown begins
  });
});

describe("withDecision", () => {
  it("keeps the newest decisions", () => {
    let state = { policy, decisions: [] as ReturnType<typeof withDecision>["decisions"] };
    for (let i = 0; i < DECISIONS_KEPT + 5; i++) {
      state = withDecision(state, { at: String(i), from: i, to: i + 1, waiting: 0, running: 0, reason: "" });
    }
    expect(state.decisions).toHaveLength(DECISIONS_KEPT);
    expect(state.decisions.at(-1)?.from).toBe(DECISIONS_KEPT + 4);
  });
});

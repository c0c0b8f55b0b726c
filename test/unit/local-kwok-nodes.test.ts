import type { CoreV1Api, V1Node } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { KwokNodes, NotAKwokClusterError } from "../../src/local/kwok-nodes.js";

const fake = (name: string): V1Node => ({
  metadata: { name, annotations: { "kwok.x-k8s.io/node": "fake" } },
});
const real = (name: string): V1Node => ({ metadata: { name } });

/** A CoreV1Api that knows these nodes. */
function clusterOf(nodes: V1Node[]): CoreV1Api {
  return {
    listNode: async () => ({ items: nodes }),
    readNode: async ({ name }: { name: string }) => {
      const node = nodes.find((n) => n.metadata?.name === name);
      if (!node) throw Object.assign(new Error("not found"), { code: 404 });
      return node;
    },
  } as unknown as CoreV1Api;
}

const signal = new AbortController().signal;

describe("the local pod runner's kwok check", () => {
  it("refuses a cluster without kwok fake nodes, naming its nodes", async () => {
    const nodes = new KwokNodes(clusterOf([real("worker-1"), real("worker-2")]));
    await expect(nodes.assertHasFake(signal)).rejects.toThrow(NotAKwokClusterError);
    await expect(nodes.assertHasFake(signal)).rejects.toThrow(
      "the local pod runner only runs against a local kwok cluster: none of its nodes (worker-1, worker-2) has the annotation kwok.x-k8s.io/node=fake",
    );
  });

  it("refuses a cluster without nodes", async () => {
    await expect(new KwokNodes(clusterOf([])).assertHasFake(signal)).rejects.toThrow(
      "the cluster has no nodes",
    );
  });

  it("accepts a kwok cluster with a real node beside, and tells the nodes apart", async () => {
    const nodes = new KwokNodes(clusterOf([fake("node-000000"), real("test-node")]));
    await nodes.assertHasFake(signal);
    expect(await nodes.isFake("node-000000", signal)).toBe(true);
    expect(await nodes.isFake("test-node", signal)).toBe(false);
  });
});

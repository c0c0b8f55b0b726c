/**
 * The real node of scripts/real-node.sh as the tests and the demo see it: its label and taint, how pods and
 * infra's executors are placed on it, and finding it (Ready) in a cluster.
 */
import type { CoreV1Api, V1Node } from "@kubernetes/client-node";
import { withSignal } from "../src/atoms/kube-api.js";

/** The node's label (`=true`), also the key of its taint (`=true:NoSchedule`). */
export const REAL_NODE_LABEL = "colonyos.io/real-node";

/** infra/'s `nodeSelector` and `tolerations` config that puts its own executors on the node. */
export const REAL_NODE_PLACEMENT = {
  nodeSelector: { [REAL_NODE_LABEL]: "true" },
  tolerations: [{ key: REAL_NODE_LABEL, operator: "Equal", value: "true", effect: "NoSchedule" }],
};

/** The same for a deploy through the official CLI: its `--kwargs` items (the operator allows the taint's key). */
export const REAL_NODE_KWARGS = `nodeselector:${REAL_NODE_LABEL}=true,tolerations:${REAL_NODE_LABEL}=true=NoSchedule`;

/**
 * The cluster's real node, Ready, and the address where its pods reach exposed host ports (its InternalIP, the
 * bridge's address). Throws naming what is missing, then `howTo`.
 */
export async function findRealNode(
  core: CoreV1Api,
  howTo: string,
): Promise<{ node: V1Node; name: string; hostAddress: string }> {
  const nodes = await core.listNode(
    { labelSelector: `${REAL_NODE_LABEL}=true` },
    withSignal(AbortSignal.timeout(20_000)),
  );
  const node = nodes.items[0];
  if (!node)
    throw new Error(`the cluster has no real node (no node labelled ${REAL_NODE_LABEL}=true); ${howTo}`);
  const name = node.metadata?.name ?? "";
  const ready = node.status?.conditions?.find((c) => c.type === "Ready")?.status;
  if (ready !== "True") throw new Error(`the real node ${name} is not Ready (${ready}); ${howTo}`);
  const hostAddress = node.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
  if (!hostAddress) throw new Error(`the real node ${name} has no InternalIP; ${howTo}`);
  return { node, name, hostAddress };
}

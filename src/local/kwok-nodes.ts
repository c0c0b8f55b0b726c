/**
 * The local pod runner's safety check. On a real cluster a kubelet already runs every scheduled pod; running
 * them here too would start second copies of real workloads on this machine. kwok's fake nodes run nothing,
 * and kwok marks each of them with an annotation, so the runner only ever works on pods bound to such nodes, and
 * only in a cluster that has them. A real node beside them (scripts/real-node.sh) runs its own pods.
 */
import type { CoreV1Api, V1Node } from "@kubernetes/client-node";
import { isApiStatus, kubeApiError, withSignal } from "../atoms/kube-api.js";

export const KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node";
export const KWOK_NODE_FAKE = "fake";

const ONLY_KWOK = "the local pod runner only runs against a local kwok cluster";

export class NotAKwokClusterError extends Error {
  override readonly name = "NotAKwokClusterError";
  constructor(detail: string) {
    super(`${ONLY_KWOK}: ${detail}`);
  }
}

export function isKwokNode(node: V1Node): boolean {
  return node.metadata?.annotations?.[KWOK_NODE_ANNOTATION] === KWOK_NODE_FAKE;
}

/** Which nodes are kwok's fake ones, remembering the answers (a node does not change what it is). */
export class KwokNodes {
  private readonly fake = new Set<string>();

  constructor(private readonly core: CoreV1Api) {}

  /** Throws {@link NotAKwokClusterError} unless the cluster has kwok fake nodes (a real cluster has none). */
  async assertHasFake(signal: AbortSignal): Promise<void> {
    let nodes: V1Node[];
    try {
      nodes = (await this.core.listNode({}, withSignal(signal))).items;
    } catch (error) {
      throw kubeApiError(error, `${ONLY_KWOK}, and listing the cluster's nodes to check that failed`, signal);
    }
    const fake = nodes.filter(isKwokNode);
    if (fake.length === 0) {
      throw new NotAKwokClusterError(
        nodes.length === 0
          ? "the cluster has no nodes, so nothing shows that it is one"
          : `none of its nodes (${nodes.map((n) => n.metadata?.name).join(", ")}) has the annotation ${KWOK_NODE_ANNOTATION}=${KWOK_NODE_FAKE}`,
      );
    }
    for (const node of fake) this.fake.add(node.metadata?.name ?? "");
  }

  /** Whether the named node is a kwok fake node; a node added since the check is read once. */
  async isFake(name: string, signal: AbortSignal): Promise<boolean> {
    if (this.fake.has(name)) return true;
    let node: V1Node;
    try {
      node = await this.core.readNode({ name }, withSignal(signal));
    } catch (error) {
      if (isApiStatus(error, 404) && !signal.aborted) return false;
      throw kubeApiError(error, `read node "${name}"`, signal);
    }
    if (!isKwokNode(node)) return false;
    this.fake.add(name);
    return true;
  }
}

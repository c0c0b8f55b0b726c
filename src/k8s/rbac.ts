/**
 * The least privilege the k8s executor needs, in its own namespace only (a Role, never a ClusterRole):
 * - its stacks create, update and delete Deployments and the Secrets holding the executors' keys;
 * - the Pulumi provider's readiness checks watch ReplicaSets, Pods, PersistentVolumeClaims and Events;
 * - get_pods/restart/logs read pods, delete them and read their logs;
 * - replicas take turns on a deployment name through one Lease per name (created on first use, kept for its
 *   record), and prove they are alive through a Lease each (deleted when proven gone).
 * Nothing cluster-wide: API discovery is open to every authenticated client.
 */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const READ = ["get", "list", "watch"];
const WRITE = ["create", "update", "patch", "delete"];

export const K8S_EXECUTOR_RULES: readonly PolicyRule[] = [
  { apiGroups: ["apps"], resources: ["deployments"], verbs: [...READ, ...WRITE] },
  { apiGroups: [""], resources: ["secrets"], verbs: [...READ, ...WRITE] },
  { apiGroups: ["apps"], resources: ["replicasets"], verbs: READ },
  { apiGroups: [""], resources: ["pods"], verbs: [...READ, "delete"] },
  { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
  { apiGroups: [""], resources: ["persistentvolumeclaims", "events"], verbs: READ },
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update", "delete"] },
];

import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { clusterKubeconfig } from "../peers/cluster.js";
import { startColoniesServer } from "../peers/colonies-server.js";
import { startRuntime, submit, waitDone } from "../peers/executor.js";
import { k8sExecutorEnv, TEST_IMAGE } from "../peers/k8s-executor.js";
import { startKms } from "../peers/kms.js";
import { loadKubeConfig } from "../src/atoms/kube-config.js";
import { k8sExecutor } from "../src/executors/k8s.js";
import { ChildUsage, describeUsage } from "../src/k8s/cpu-accounting.js";

const kubeconfig = clusterKubeconfig();
const kc = loadKubeConfig({ path: kubeconfig });
const core = kc.makeApiClient(CoreV1Api);
const server = await startColoniesServer();
const kms = await startKms();
const runtimes = [];
for (const kind of ["pass", "kms"]) {
  const namespace = `diag-${kind}-${randomBytes(3).toString("hex")}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const dataDir = await mkdtemp(join(tmpdir(), "k8s-diag-"));
  const env = k8sExecutorEnv({ kubeconfig, namespace, dataDir, passphrase: "bench" }, {
    K8S_STACK_CONCURRENCY: "10", EXECUTOR_CONCURRENCY: "12", K8S_MAX_DEPLOYMENTS: "40", K8S_MAX_CONTAINERS: "400",
    COLONIES_EXECUTOR_TYPE: `k8s-${kind}`,
    ...(kind === "kms" ? { K8S_PULUMI_SECRETS_PROVIDER: kms.secretsProvider, ...kms.env, K8S_PULUMI_PASSPHRASE: "" } : {}),
  });
  runtimes.push(await startRuntime(server, k8sExecutor, env));
}
async function call(kind: string, fn: string, args: string[]) {
  const t = performance.now();
  const done = await waitDone(server, (await submit(server, `k8s-${kind}`, fn, args)).processid, 600_000);
  if (done.state !== 2) throw new Error(`failed ${done.errors}`);
  return performance.now() - t;
}
for (const kind of ["pass", "kms"]) await call(kind, "deploy", ["warm", "1", "1", "false", TEST_IMAGE]);
for (let r = 0; r < 3; r++) {
  for (const kind of ["pass", "kms"]) {
    const u = new ChildUsage(/pulumi/, 50); await u.start();
    const one = await call(kind, "deploy", [`solo-${r}`, "1", "1", "false", TEST_IMAGE]);
    const ud = await u.stop();
    const u2 = new ChildUsage(/pulumi/, 50); await u2.start();
    const sc = await call(kind, "scale", [`solo-${r}`, "2"]);
    const us = await u2.stop();
    const t = performance.now();
    await Promise.all(Array.from({ length: 10 }, (_, i) => call(kind, "deploy", [`burst-${r}-${i}`, "1", "1", "false", TEST_IMAGE])));
    const ten = performance.now() - t;
    console.log(`${kind} deploy ${one.toFixed(0)} ms cpu ${ud.reapedCpuSeconds.toFixed(2)} [${describeUsage(ud)}] | scale ${sc.toFixed(0)} ms cpu ${us.reapedCpuSeconds.toFixed(2)} rss ${us.peakRssMb.toFixed(0)} | ten ${ten.toFixed(0)} ms ratio ${(ten / one).toFixed(2)}`);
  }
}
process.exit(0);

import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { CoreV1Api, type KubeConfig, type V1Node, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { findRealNode, REAL_NODE_LABEL } from "../../peers/real-node.js";
import { withSignal } from "../../src/atoms/kube-api.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";

// Against a REAL node (scripts/real-node.sh: containerd, runc, a bridge CNI network, kubelet, kube-proxy) joined to
// the local control plane (scripts/cluster.sh): real containers from an image in containerd, a real readiness
// probe, logs from the runtime, the kubernetes Service from inside a pod, a host loopback port exposed to pods, and
// a real OOM kill. The node is tainted; pods here tolerate the taint and select its label.

const LABEL = REAL_NODE_LABEL;
const IMAGE = process.env.REAL_NODE_BUSYBOX_IMAGE || "localhost/colonyos/busybox:1";
const HOW_TO =
  "start it with `KWOK_CLUSTER_NAME=<cluster> bash scripts/real-node.sh up` after `bash scripts/cluster.sh up` " +
  "(root, this machine; it builds kubelet and its images with scripts/peers/kubelet.sh and installs containerd, runc " +
  "and the CNI plugins with apt-get)";
const run = promisify(execFile);
const call = () => withSignal(AbortSignal.timeout(20_000));

/** The real node, Ready, with the test image in its runtime. */
async function realNode(core: CoreV1Api): Promise<{ node: V1Node; hostAddress: string }> {
  const { node, name, hostAddress } = await findRealNode(core, HOW_TO);
  const images = (node.status?.images ?? []).flatMap((i) => i.names ?? []);
  if (!images.includes(IMAGE))
    throw new Error(`the real node ${name} has no image ${IMAGE} (it has ${images.join(", ")}); ${HOW_TO}`);
  return { node, hostAddress };
}

describe("a real node", () => {
  let kubeConfig: KubeConfig;
  let core: CoreV1Api;
  let namespace = "";
  let node: V1Node;
  let hostAddress = "";
  let cluster = "";
  let server: Server | undefined;
  let hostPort = 0;

  beforeAll(async () => {
    kubeConfig = loadKubeConfig({ path: clusterKubeconfig() });
    core = kubeConfig.makeApiClient(CoreV1Api);
    ({ node, hostAddress } = await realNode(core));
    // The node is named <cluster>-node; its InternalIP is its bridge's address, where pods reach exposed host ports.
    cluster = (node.metadata?.name ?? "").replace(/-node$/, "");
    // A service on the host's loopback only, as a Colonies server, PostgreSQL or MinIO are.
    server = createServer((_req, res) => res.end("colonyos-host-loopback-ok\n"));
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    hostPort = (server.address() as AddressInfo).port;
    await run("bash", ["scripts/real-node.sh", "expose", String(hostPort)], {
      env: { ...process.env, KWOK_CLUSTER_NAME: cluster },
    });
    namespace = await createNamespace(core, "real-node");
  });

  afterAll(async () => {
    if (hostPort) {
      await run("bash", ["scripts/real-node.sh", "unexpose", String(hostPort)], {
        env: { ...process.env, KWOK_CLUSTER_NAME: cluster },
      }).catch(() => undefined);
    }
    server?.close();
    if (namespace) await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  function pod(name: string, script: string, extra: Partial<V1Pod["spec"]> = {}, container = {}): V1Pod {
    return {
      metadata: { name, namespace, labels: { app: name } },
      spec: {
        nodeSelector: { [LABEL]: "true" },
        tolerations: [{ key: LABEL, operator: "Exists", effect: "NoSchedule" }],
        terminationGracePeriodSeconds: 1,
        containers: [{ name: "main", image: IMAGE, command: ["/bin/sh", "-c", script], ...container }],
        ...extra,
      },
    };
  }

  async function until(name: string, done: (p: V1Pod) => boolean, timeout = 60_000): Promise<V1Pod> {
    let last: V1Pod | undefined;
    await expect
      .poll(
        async () => {
          last = await core.readNamespacedPod({ name, namespace }, call());
          return done(last);
        },
        { timeout, interval: 250 },
      )
      .toBe(true);
    return last as V1Pod;
  }

  const logs = (name: string) => core.readNamespacedPodLog({ name, namespace, container: "main" }, call());

  it("runs a container that becomes Ready through an HTTP readiness probe and whose logs come from the runtime", async () => {
    await core.createNamespacedPod(
      {
        namespace,
        body: pod(
          "web",
          "echo started-on-a-real-node; mkdir -p /www; echo ok >/www/index.html; exec httpd -f -p 8080 -h /www",
          {},
          { readinessProbe: { httpGet: { path: "/index.html", port: 8080 }, periodSeconds: 1 } },
        ),
      },
      call(),
    );
    const web = await until(
      "web",
      (p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
    );
    expect(web.spec?.nodeName).toBe(node.metadata?.name);
    expect(web.status?.containerStatuses?.[0]?.containerID).toMatch(/^containerd:\/\//);
    // A pod address from the node's bridge network, not one kwok made up.
    expect(web.status?.podIP?.split(".").slice(0, 3)).toEqual(hostAddress.split(".").slice(0, 3));
    expect(await logs("web")).toContain("started-on-a-real-node");
  });

  it("reaches the API server through the kubernetes Service, a Service of its own (kube-proxy) and a host loopback port", async () => {
    // A ClusterIP Service in front of the web pod above: kube-proxy's iptables rules on the node route it.
    const service = await core.createNamespacedService(
      {
        namespace,
        body: {
          metadata: { name: "web", namespace },
          spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080 }] },
        },
      },
      call(),
    );
    const clusterIP = service.spec?.clusterIP ?? "";
    // busybox nc (Debian's busybox-static wget segfaults here): an HTTP request to the API server's HTTPS port
    // gets its 400 answer, the exposed host port the server above, the Service the web pod's page.
    const script = [
      'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT"',
      "echo",
      `printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 ${hostAddress} ${hostPort}`,
      // kube-proxy writes the Service's rules within a second or so of its creation: retry until then.
      `for i in $(seq 20); do a="$(printf "GET /index.html HTTP/1.0\\r\\n\\r\\n" | nc -w 2 ${clusterIP} 80)"; [ -n "$a" ] && break; sleep 0.5; done`,
      'echo "$a" | sed "s/^/service-answer: /"',
      "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token-mounted",
    ].join("; ");
    await core.createNamespacedPod(
      { namespace, body: pod("reach", script, { restartPolicy: "Never" }) },
      call(),
    );
    const done = await until("reach", (p) => ["Succeeded", "Failed"].includes(p.status?.phase ?? ""));
    const out = await logs("reach");
    expect(done.status?.phase, out).toBe("Succeeded");
    expect(out).toMatch(/^HTTP\/1\.[01] 400/m);
    expect(out).toContain("Client sent an HTTP request to an HTTPS server");
    expect(out).toContain("colonyos-host-loopback-ok");
    expect(out).toContain("service-answer: ok");
    expect(out).toContain("token-mounted");
  });

  it("OOM-kills a container that uses more memory than its limit", async () => {
    await core.createNamespacedPod(
      {
        namespace,
        body: pod(
          "oom",
          "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
          { restartPolicy: "Never" },
          { resources: { limits: { memory: "16Mi" } } },
        ),
      },
      call(),
    );
    const oom = await until("oom", (p) => p.status?.phase === "Failed");
    const terminated = oom.status?.containerStatuses?.[0]?.state?.terminated;
    expect(terminated?.reason).toBe("OOMKilled");
    expect(terminated?.exitCode).toBe(137);
    expect(oom.status?.phase).toBe("Failed");
  });
});

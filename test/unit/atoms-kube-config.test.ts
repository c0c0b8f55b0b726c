import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeConfigError, loadKubeConfig } from "../../src/atoms/kube-config.js";

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster: { server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true }
  - name: other
    cluster: { server: "https://127.0.0.1:7443", insecure-skip-tls-verify: true }
users:
  - name: admin
    user: { token: "t" }
contexts:
  - name: local
    context: { cluster: local, user: admin }
  - name: other
    context: { cluster: other, user: admin }
current-context: local
`;

describe("loadKubeConfig", () => {
  const saved = { ...process.env };
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kube-config-"));
    // Nothing to find: an empty home, no KUBECONFIG, not in a pod.
    process.env.HOME = dir;
    delete process.env.KUBECONFIG;
    delete process.env.KUBERNETES_SERVICE_HOST;
  });

  afterEach(async () => {
    process.env = { ...saved };
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses client-node's silent fallback to http://localhost:8080", () => {
    expect(() => loadKubeConfig()).toThrow(KubeConfigError);
    expect(() => loadKubeConfig()).toThrow(/no Kubernetes configuration found: set KUBECONFIG/);
  });

  it("loads the file named by KUBECONFIG, or by path, with its current context", async () => {
    const file = join(dir, "kubeconfig");
    await writeFile(file, KUBECONFIG);
    expect(loadKubeConfig({ path: file }).getCurrentCluster()?.server).toBe("https://127.0.0.1:6443");
    process.env.KUBECONFIG = file;
    expect(loadKubeConfig().getCurrentCluster()?.server).toBe("https://127.0.0.1:6443");
  });

  it("switches to a named context, and rejects an unknown one", async () => {
    const file = join(dir, "kubeconfig");
    await writeFile(file, KUBECONFIG);
    expect(loadKubeConfig({ path: file, context: "other" }).getCurrentCluster()?.server).toBe(
      "https://127.0.0.1:7443",
    );
    expect(() => loadKubeConfig({ path: file, context: "missing" })).toThrow(/no context "missing"/);
  });

  it("names the file it cannot read", () => {
    process.env.KUBECONFIG = join(dir, "absent");
    expect(() => loadKubeConfig()).toThrow(/cannot read the kubeconfig .*absent/);
  });
});

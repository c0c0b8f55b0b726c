/**
 * A private key management service speaking AWS KMS's API (local-kms, built by scripts/peers/kms.sh), on a free
 * port of 127.0.0.1 with a fresh data directory and one symmetric key made for this run: what the k8s executor's
 * K8S_PULUMI_SECRETS_PROVIDER=awskms://... is tested and measured against. The Pulumi CLI's own keeper (AWS SDK
 * v2) reaches it through the URL's `endpoint` parameter; it needs credentials in its environment, which
 * local-kms accepts whatever they are (`env` below: random per run). Throws (never skips) with the command to
 * run when the binary is missing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pinnedBinary } from "./peer-binary.js";

const REGION = "us-east-1";

export interface KmsServer {
  endpoint: string;
  /** The key's id (a UUID). */
  keyId: string;
  /** K8S_PULUMI_SECRETS_PROVIDER for this key. */
  secretsProvider: string;
  /** What the Pulumi CLI's keeper needs in its environment. */
  env: Record<string, string>;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** The pinned local-kms binary, or LOCAL_KMS_BINARY. */
export function kmsBinary(): string {
  return pinnedBinary({
    script: "scripts/peers/kms.sh",
    versionVariable: "LOCAL_KMS_MODULE",
    name: "local-kms",
    envVariable: "LOCAL_KMS_BINARY",
    what: "local-kms",
  });
}

/** One call of the KMS API (JSON 1.1 over HTTP, as the AWS SDKs send it). */
async function kmsCall(endpoint: string, action: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": `TrentService.${action}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`KMS ${action}: HTTP ${response.status}: ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

export async function startKms(): Promise<KmsServer> {
  const bin = kmsBinary();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "colonyos-kms-"));
  const child = spawn(bin, [], {
    env: { PATH: process.env.PATH, LOCAL_KMS_DATA_PATH: dataDir, LOCAL_KMS_REGION: REGION },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const address = new Promise<string>((resolve, reject) => {
    const collect = (b: Buffer) => {
      out = (out + b.toString()).slice(-8192);
      const listening = /listening on (127\.0\.0\.1:\d+)/.exec(out);
      if (listening?.[1]) resolve(listening[1]);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`local-kms exited with code ${code}:\n${out}`)));
    setTimeout(() => reject(new Error(`local-kms did not start within 15 s:\n${out}`)), 15_000).unref();
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const endpoint = `http://${await address}`;
    const created = await kmsCall(endpoint, "CreateKey", { Description: "colonyos-executors test key" });
    const keyId = String((created.KeyMetadata as { KeyId?: string } | undefined)?.KeyId ?? "");
    if (!keyId) throw new Error(`KMS CreateKey returned no key id: ${JSON.stringify(created)}`);
    return {
      endpoint,
      keyId,
      secretsProvider: `awskms://${keyId}?region=${REGION}&endpoint=${encodeURIComponent(endpoint)}`,
      env: {
        AWS_ACCESS_KEY_ID: `test${randomBytes(6).toString("hex")}`,
        AWS_SECRET_ACCESS_KEY: randomBytes(20).toString("hex"),
        AWS_REGION: REGION,
        // No shared config files or instance metadata lookups: the keeper's credentials are these.
        AWS_EC2_METADATA_DISABLED: "true",
      },
      process: child,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

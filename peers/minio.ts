/**
 * A private MinIO server (real S3-compatible storage) for tests and benchmarks, on a free port on 127.0.0.1
 * with a fresh data directory and random root credentials. The binary is built by scripts/peers/minio.sh
 * (pinned release, cached outside the repository); the release is read from that script so the two never
 * disagree. Throws (never skips) with the command to run when the binary is missing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { pinnedBinary } from "./peer-binary.js";
import { freePort } from "./ports.js";

export interface MinioServer {
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
  dataDir: string;
  process: ChildProcess;
  /** The last lines MinIO printed (for failure messages). */
  output(): string;
}

/** The pinned MinIO binary, or MINIO_BINARY. */
export function minioBinary(): string {
  return pinnedBinary({
    script: "scripts/peers/minio.sh",
    versionVariable: "MINIO_RELEASE",
    name: "minio",
    envVariable: "MINIO_BINARY",
    what: "MinIO",
  });
}

async function waitReady(server: MinioServer, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.process.exitCode !== null || server.process.pid === undefined) {
      throw new Error(`MinIO exited with code ${server.process.exitCode}:\n${server.output()}`);
    }
    try {
      const res = await fetch(`${server.endpoint}/minio/health/ready`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`MinIO did not become ready within ${timeoutMs} ms:\n${server.output()}`);
}

export async function startMinio(): Promise<MinioServer> {
  const bin = minioBinary();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "colonyos-minio-"));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const consolePort = await freePort();
    const accessKey = `test${randomBytes(6).toString("hex")}`;
    const secretKey = randomBytes(20).toString("hex");
    const child = spawn(
      bin,
      [
        "server",
        dataDir,
        "--address",
        `127.0.0.1:${port}`,
        "--console-address",
        `127.0.0.1:${consolePort}`,
        "--quiet",
      ],
      {
        env: {
          PATH: process.env.PATH,
          HOME: dataDir,
          MINIO_ROOT_USER: accessKey,
          MINIO_ROOT_PASSWORD: secretKey,
          MINIO_BROWSER: "off",
          MINIO_UPDATE: "off",
          MINIO_CI_CD: "1",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.once("error", (err) => {
      out += `\n${err.message}`;
    });
    const collect = (b: Buffer) => {
      out = (out + b.toString()).slice(-8192);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    const server: MinioServer = {
      endpoint: `http://127.0.0.1:${port}`,
      region: "us-east-1",
      accessKey,
      secretKey,
      dataDir,
      process: child,
      output: () => out,
    };
    try {
      await waitReady(server, 30_000);
      return server;
    } catch (err) {
      child.kill("SIGKILL");
      if (attempt >= 3) {
        await fs.rm(dataDir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}

export async function stopMinio(server: MinioServer): Promise<void> {
  const child = server.process;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  await fs.rm(server.dataDir, { recursive: true, force: true });
}

/** An S3 client for the server, with its root credentials (path-style addressing, as MinIO serves it). */
export function minioClient(server: MinioServer): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
  });
}

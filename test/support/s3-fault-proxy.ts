/**
 * An HTTP proxy on loopback in front of a real S3 server (MinIO) that passes every request through unchanged,
 * except the ones it is told to refuse: those it answers as MinIO answers a PutObject that loses a race with a
 * DeleteObject of the prefix it writes into (403 AccessDenied). Signatures stay valid: the Host header the client
 * signed is forwarded as it is.
 */
import { randomBytes } from "node:crypto";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";

export interface S3FaultProxy {
  /** host:port, for an s3:// backend URL's endpoint. */
  host: string;
  /** Refuses the next `times` requests of `method` whose path matches `path` (Infinity: until told otherwise). */
  refuse(method: string, path: RegExp, times: number): void;
  /** How many requests it refused. */
  refused(): number;
  close(): Promise<void>;
}

export async function startS3FaultProxy(target: string): Promise<S3FaultProxy> {
  const upstream = new URL(target);
  let rule: { method: string; path: RegExp; left: number } | undefined;
  let refused = 0;
  const server = createServer((req, res) => {
    const url = req.url ?? "/";
    if (rule && rule.left > 0 && req.method === rule.method && rule.path.test(url)) {
      rule.left--;
      refused++;
      const requestId = randomBytes(8).toString("hex").toUpperCase();
      req.resume();
      req.on("end", () => {
        res.writeHead(403, { "content-type": "application/xml", "x-amz-request-id": requestId });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied.</Message>` +
            `<Resource>${url.split("?")[0]}</Resource><RequestId>${requestId}</RequestId></Error>`,
        );
      });
      return;
    }
    const forwarded = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on("error", (error) => res.destroy(error));
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    refuse(method, path, times) {
      rule = { method, path, left: times };
    },
    refused: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

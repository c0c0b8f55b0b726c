/**
 * One `pulumi up` of an inline program, driven with the Automation API's own building blocks and nothing after
 * it: `Stack.up` runs `pulumi up` and then three more CLI processes (`stack output` twice, masked and with
 * secrets, and `stack history`) to return the outputs and the summary, which the update itself already knows.
 * Here the program runs in the SDK's LanguageServer behind a gRPC server in this process (as `Stack.up` does),
 * the CLI connects to it (`--client`, `--exec-kind auto.inline`), the summary comes from the engine's own
 * summary event (`--event-log`), and the outputs are the values the program's returned outputs resolved to in
 * this process (secrets included, plain JSON as the state stores them).
 * Failures are the SDK's: the CLI runs through `PulumiCommand.run`, which types them from stderr
 * (CommandError, ConcurrentUpdateError, StackNotFoundError); a cancellation is SIGINT to the CLI.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent, PulumiCommand, PulumiFn } from "@pulumi/pulumi/automation/index.js";

/** What `PulumiCommand.run` returns (internal in the SDK's typings, public in its code). */
interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

type Run = (
  args: string[],
  cwd: string,
  env: Record<string, string>,
  onOutput?: (chunk: string) => void,
  onError?: (chunk: string) => void,
  signal?: AbortSignal,
) => Promise<CommandResult>;

/** The SDK's internal modules the update is built from, loaded from the SDK's own location. */
interface GrpcServer {
  addService(service: unknown, implementation: unknown): void;
  bindAsync(address: string, credentials: unknown, done: (error: Error | null, port: number) => void): void;
  forceShutdown(): void;
}
interface EventStream {
  on(event: "data", listener: (request: { getEvent(): string }) => void): void;
  on(event: "end", listener: () => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}
interface SdkParts {
  grpc: {
    Server: new (options: Record<string, unknown>) => GrpcServer;
    ServerCredentials: { createInsecure(): unknown };
  };
  LanguageServer: new (program: PulumiFn) => { onPulumiExit(hasError: boolean): void };
  LanguageRuntimeService: unknown;
  EventsService: unknown;
  Empty: new () => unknown;
  grpcChannelOptions: Record<string, unknown>;
}

let parts: SdkParts | undefined;
function sdk(): SdkParts {
  if (!parts) {
    // The SDK's own copies (the same grpc instance its generated services were made with).
    const require = createRequire(createRequire(import.meta.url).resolve("@pulumi/pulumi"));
    parts = {
      grpc: require("@grpc/grpc-js"),
      LanguageServer: require("./automation/server").LanguageServer,
      LanguageRuntimeService: require("./proto/language_grpc_pb").LanguageRuntimeService,
      EventsService: require("./proto/events_grpc_pb").EventsService,
      Empty: require("google-protobuf/google/protobuf/empty_pb").Empty,
      grpcChannelOptions: require("./runtime/settings").grpcChannelOptions,
    };
  }
  return parts;
}

export interface ChangeSummary {
  [op: string]: number;
}

export interface UpdateOptions {
  command: PulumiCommand;
  /** The stack's work directory (holds Pulumi.yaml). */
  workDir: string;
  /** The CLI's environment, as a workspace's envVars. */
  env: Record<string, string>;
  stackName: string;
  program: PulumiFn;
  onOutput?: (chunk: string) => void;
  signal?: AbortSignal;
  /** `--refresh`: read the live objects into the state first. */
  refresh?: boolean;
  /** More flags for `pulumi up` (e.g. `--profiling <prefix>`, `--tracing file:<path>`). */
  args?: string[];
  /**
   * Every engine event as it happens: the CLI streams them to a gRPC events server in this process (as
   * `Stack.up` has it do for its onEvent); without it, they are read from an event log file after the update.
   */
  onEvent?: (event: EngineEvent) => void;
}

export interface UpdateOutcome {
  changes: ChangeSummary;
  /** The values the program's outputs resolved to: the stack's outputs, secrets in plain. */
  outputs: Record<string, unknown>;
  /** The engine's own duration of the update, in seconds. */
  durationSeconds: number;
}

/** `PulumiCommand.run`, typed. */
export function runCli(
  command: PulumiCommand,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  options: { onOutput?: (chunk: string) => void; signal?: AbortSignal } = {},
): Promise<CommandResult> {
  const run = (command as unknown as { run: Run }).run.bind(command);
  // What Stack.runPulumiCmd adds to a workspace's environment.
  return run(
    args,
    cwd,
    { PULUMI_DEBUG_COMMANDS: "true", ...env },
    options.onOutput,
    undefined,
    options.signal,
  );
}

/**
 * The program, and a promise of the plain values its returned outputs resolve to (rejected if the program never
 * returns). Plain as the state stores them: JSON values, undefined properties dropped, secrets unwrapped.
 */
export function capturingOutputs(program: PulumiFn): {
  program: PulumiFn;
  outputs: () => Promise<Record<string, unknown>>;
} {
  let captured: Promise<Record<string, unknown>> | undefined;
  return {
    program: async () => {
      const returned = await program();
      captured = new Promise((resolve) => {
        pulumi.output(returned ?? {}).apply((values) => {
          resolve(JSON.parse(JSON.stringify(values ?? {})));
          return undefined;
        });
      });
      return returned;
    },
    outputs: () => captured ?? Promise.reject(new Error("the program did not return its outputs")),
  };
}

/** Binds a gRPC server to a free loopback port. */
function bind(server: GrpcServer): Promise<number> {
  const { grpc } = sdk();
  return new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    ),
  );
}

/** A gRPC events server handing each engine event to `onEvent` (the CLI's `--event-log tcp://...`). */
function eventsServer(onEvent: (event: EngineEvent) => void): GrpcServer {
  const { grpc, EventsService, Empty, grpcChannelOptions } = sdk();
  const server = new grpc.Server({ ...grpcChannelOptions });
  server.addService(EventsService, {
    streamEvents(call: EventStream, callback: (error: Error | null, reply: unknown) => void) {
      call.on("data", (request) => {
        const [event] = parseEvents(request.getEvent());
        if (event) onEvent(event);
      });
      call.on("end", () => callback(null, new Empty()));
      call.on("error", (error) => callback(error, null));
    },
  });
  return server;
}

/** Runs `pulumi up` of the program on an existing stack; see the module's comment. */
export async function runUpdate(options: UpdateOptions): Promise<UpdateOutcome> {
  const { grpc, LanguageServer, LanguageRuntimeService, grpcChannelOptions } = sdk();
  const capture = capturingOutputs(options.program);
  const server = new grpc.Server({ ...grpcChannelOptions });
  const languageServer = new LanguageServer(capture.program);
  server.addService(LanguageRuntimeService, languageServer);
  const streamed: EngineEvent[] = [];
  const events = options.onEvent
    ? eventsServer((event) => {
        streamed.push(event);
        options.onEvent?.(event);
      })
    : undefined;
  const logDir = events ? undefined : await mkdtemp(join(tmpdir(), "pulumi-update-"));
  let hasError = false;
  try {
    const port = await bind(server);
    const eventLog = events ? `tcp://127.0.0.1:${await bind(events)}` : join(logDir as string, "events");
    const args = ["up", "--yes", "--skip-preview"];
    if (options.refresh) args.push("--refresh");
    args.push("--color", "never", `--client=127.0.0.1:${port}`, "--exec-kind", "auto.inline");
    args.push("--event-log", eventLog, ...(options.args ?? []), "--stack", options.stackName);
    if (options.signal?.aborted) throw options.signal.reason;
    await runCli(options.command, args, options.workDir, options.env, {
      onOutput: options.onOutput,
      signal: options.signal,
    });
    const all = logDir ? parseEvents(await readFile(eventLog, "utf8")) : streamed;
    const summary = all.find((e) => e.summaryEvent)?.summaryEvent ?? (await lastUpdateSummary(options));
    return {
      changes: { ...summary.resourceChanges } as ChangeSummary,
      outputs: await capture.outputs(),
      durationSeconds: summary.durationSeconds,
    };
  } catch (error) {
    hasError = true;
    throw error;
  } finally {
    try {
      languageServer.onPulumiExit(hasError);
    } finally {
      server.forceShutdown();
      events?.forceShutdown();
      if (logDir) await rm(logDir, { recursive: true, force: true });
    }
  }
}

/**
 * The summary of the stack's last update from its history (what `Stack.up` reads): only for an update whose
 * events lacked one (never seen; the CLI always sends it before it exits).
 */
async function lastUpdateSummary(
  options: UpdateOptions,
): Promise<{ resourceChanges: ChangeSummary; durationSeconds: number }> {
  const history = await runCli(
    options.command,
    ["stack", "history", "--json", "--page-size", "1", "--page", "1", "--stack", options.stackName],
    options.workDir,
    options.env,
  );
  const [last] = JSON.parse(history.stdout) as {
    resourceChanges?: ChangeSummary;
    startTime: string;
    endTime?: string;
  }[];
  const seconds = last?.endTime ? (Date.parse(last.endTime) - Date.parse(last.startTime)) / 1000 : 0;
  return { resourceChanges: last?.resourceChanges ?? {}, durationSeconds: seconds };
}

/** The engine events of an event log (one JSON object a line; a torn last line is skipped). */
export function parseEvents(text: string): EngineEvent[] {
  const events: EngineEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      events.push(JSON.parse(line) as EngineEvent);
    } catch {
      // the CLI was cut off mid-line
    }
  }
  return events;
}

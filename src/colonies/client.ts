/**
 * A typed Colonies client: one method per RPC message this project uses. Each method names the key it must be
 * signed with (colony owner key, or a member key: an approved executor or a user).
 */
import { ColoniesError } from "./errors.js";
import { type CallOptions, type ServerAddress, Transport } from "./transport.js";
import type {
  Blueprint,
  BlueprintDefinition,
  ColoniesFunction,
  Executor,
  FunctionSpec,
  LogEntry,
  Process,
  ProcessStateValue,
} from "./types.js";

/** Margin added to a long-poll's own timeout before the HTTP request itself is abandoned. */
const LONG_POLL_MARGIN_MS = 10_000;

/**
 * The calls an executor makes (registration, assign loops, heartbeat, reports, process logs): what the executor
 * runtime depends on, so that its tests can run it against an in-memory fake. ColoniesClient implements it.
 */
export interface ColoniesApi {
  addExecutor(executor: Executor, colonyPrvKey: string, options?: CallOptions): Promise<Executor>;
  approveExecutor(
    colonyName: string,
    executorName: string,
    colonyPrvKey: string,
    options?: CallOptions,
  ): Promise<object>;
  removeExecutor(
    colonyName: string,
    executorName: string,
    colonyPrvKey: string,
    options?: CallOptions,
  ): Promise<object>;
  getExecutors(colonyName: string, prvKey: string, options?: CallOptions): Promise<Executor[]>;
  addFunction(fun: ColoniesFunction, prvKey: string, options?: CallOptions): Promise<ColoniesFunction>;
  /** Long-polls up to `timeoutSeconds`; rejects with a 404 ColoniesError when nothing was assigned. */
  assign(colonyName: string, timeoutSeconds: number, prvKey: string, options?: CallOptions): Promise<Process>;
  /** An assign that cannot take work; resolves null when the server answered "nothing to do". */
  heartbeat(colonyName: string, prvKey: string, options?: CallOptions): Promise<Process | null>;
  closeSuccessful(processId: string, out: unknown[], prvKey: string, options?: CallOptions): Promise<object>;
  closeFailed(processId: string, errors: string[], prvKey: string, options?: CallOptions): Promise<object>;
  addLog(processId: string, message: string, prvKey: string, options?: CallOptions): Promise<object>;
  getProcess(processId: string, prvKey: string, options?: CallOptions): Promise<Process>;
  /** Releases pooled connections. */
  close(): void;
}

export class ColoniesClient implements ColoniesApi {
  private readonly transport: Transport;

  constructor(address: ServerAddress, defaultTimeoutMs?: number) {
    this.transport = new Transport(address, defaultTimeoutMs);
  }

  get url(): string {
    return this.transport.url;
  }

  /** Releases pooled connections. */
  close(): void {
    this.transport.close();
  }

  version(options?: CallOptions): Promise<{ buildversion: string; buildtime?: string }> {
    return this.transport.call({ msgtype: "versionmsg" }, null, options);
  }

  // Colony owner operations.

  addExecutor(executor: Executor, colonyPrvKey: string, options?: CallOptions): Promise<Executor> {
    return this.transport.call({ msgtype: "addexecutormsg", executor }, colonyPrvKey, options);
  }

  approveExecutor(colonyName: string, executorName: string, colonyPrvKey: string, options?: CallOptions) {
    return this.transport.call<object>(
      { msgtype: "approveexecutormsg", colonyname: colonyName, executorname: executorName },
      colonyPrvKey,
      options,
    );
  }

  removeExecutor(colonyName: string, executorName: string, colonyPrvKey: string, options?: CallOptions) {
    return this.transport.call<object>(
      { msgtype: "removeexecutormsg", colonyname: colonyName, executorname: executorName },
      colonyPrvKey,
      options,
    );
  }

  // Executor operations.

  addFunction(fun: ColoniesFunction, prvKey: string, options?: CallOptions): Promise<ColoniesFunction> {
    return this.transport.call({ msgtype: "addfunctionmsg", fun }, prvKey, options);
  }

  /** Long-polls up to `timeoutSeconds`; rejects with a 404 ColoniesError when nothing was assigned. */
  assign(
    colonyName: string,
    timeoutSeconds: number,
    prvKey: string,
    options: CallOptions = {},
  ): Promise<Process> {
    return this.transport.call(
      { msgtype: "assignprocessmsg", colonyname: colonyName, timeout: timeoutSeconds },
      prvKey,
      { timeoutMs: timeoutSeconds * 1000 + LONG_POLL_MARGIN_MS, ...options },
    );
  }

  /**
   * Marks the executor alive without taking work: only assign requests update the server's "last heard from"
   * time, so this is an assign that returns at once (timeout -1) offering a negative CPU budget, which no
   * process fits (every process asks for CPU >= 0). Resolves null when the server answered "nothing to do".
   */
  async heartbeat(colonyName: string, prvKey: string, options?: CallOptions): Promise<Process | null> {
    try {
      return await this.transport.call<Process>(
        {
          msgtype: "assignprocessmsg",
          colonyname: colonyName,
          timeout: -1,
          availablecpu: "-1m",
          availablemem: "",
        },
        prvKey,
        options,
      );
    } catch (error) {
      if (error instanceof ColoniesError && error.notFound) return null;
      throw error;
    }
  }

  closeSuccessful(processId: string, out: unknown[], prvKey: string, options?: CallOptions) {
    return this.transport.call<object>(
      { msgtype: "closesuccessfulmsg", processid: processId, out },
      prvKey,
      options,
    );
  }

  closeFailed(processId: string, errors: string[], prvKey: string, options?: CallOptions) {
    return this.transport.call<object>(
      { msgtype: "closefailedmsg", processid: processId, errors },
      prvKey,
      options,
    );
  }

  setOutput(processId: string, out: unknown[], prvKey: string, options?: CallOptions) {
    return this.transport.call<object>(
      { msgtype: "setoutputmsg", processid: processId, out },
      prvKey,
      options,
    );
  }

  addLog(processId: string, message: string, prvKey: string, options?: CallOptions) {
    return this.transport.call<object>(
      { msgtype: "addlogmsg", processid: processId, message },
      prvKey,
      options,
    );
  }

  // Member operations (an approved executor or a user).

  submit(spec: FunctionSpec, prvKey: string, options?: CallOptions): Promise<Process> {
    return this.transport.call({ msgtype: "submitfuncspecmsg", spec }, prvKey, options);
  }

  getProcess(processId: string, prvKey: string, options?: CallOptions): Promise<Process> {
    return this.transport.call({ msgtype: "getprocessmsg", processid: processId }, prvKey, options);
  }

  async getProcesses(
    query: {
      colonyName: string;
      state: ProcessStateValue;
      count?: number;
      executorType?: string;
      label?: string;
    },
    prvKey: string,
    options?: CallOptions,
  ): Promise<Process[]> {
    const processes = await this.transport.call<Process[] | null>(
      {
        msgtype: "getprocessesmsg",
        colonyname: query.colonyName,
        count: query.count ?? 100,
        state: query.state,
        executortype: query.executorType ?? "",
        label: query.label ?? "",
        initiator: "",
      },
      prvKey,
      options,
    );
    return processes ?? [];
  }

  async getLogs(
    query: { colonyName: string; processId: string; count?: number; since?: number },
    prvKey: string,
    options?: CallOptions,
  ): Promise<LogEntry[]> {
    const logs = await this.transport.call<LogEntry[] | null>(
      {
        msgtype: "getlogsmsg",
        colonyname: query.colonyName,
        processid: query.processId,
        executorname: "",
        count: query.count ?? 100,
        since: query.since ?? 0,
        latest: false,
      },
      prvKey,
      options,
    );
    return logs ?? [];
  }

  getExecutor(
    colonyName: string,
    executorName: string,
    prvKey: string,
    options?: CallOptions,
  ): Promise<Executor> {
    return this.transport.call(
      { msgtype: "getexecutormsg", colonyname: colonyName, executorname: executorName },
      prvKey,
      options,
    );
  }

  async getExecutors(colonyName: string, prvKey: string, options?: CallOptions): Promise<Executor[]> {
    const executors = await this.transport.call<Executor[] | null>(
      { msgtype: "getexecutorsmsg", colonyname: colonyName },
      prvKey,
      options,
    );
    return executors ?? [];
  }

  /** A blueprint of the colony by name (any member). */
  getBlueprint(colonyName: string, name: string, prvKey: string, options?: CallOptions): Promise<Blueprint> {
    return this.transport.call({ msgtype: "getblueprintmsg", namespace: colonyName, name }, prvKey, options);
  }

  /** The colony's blueprints of `kind` at `locationName` (empty: every location), as a reconciler lists them. */
  async getBlueprints(
    colonyName: string,
    kind: string,
    locationName: string,
    prvKey: string,
    options?: CallOptions,
  ): Promise<Blueprint[]> {
    const blueprints = await this.transport.call<Blueprint[] | null>(
      { msgtype: "getblueprintsmsg", namespace: colonyName, kind, locationname: locationName },
      prvKey,
      options,
    );
    return blueprints ?? [];
  }

  /** Replaces a blueprint's status (what `colonies blueprint get` shows); members only. */
  updateBlueprintStatus(
    colonyName: string,
    blueprintName: string,
    status: Record<string, unknown>,
    prvKey: string,
    options?: CallOptions,
  ): Promise<object> {
    return this.transport.call(
      { msgtype: "updateblueprintstatusmsg", colonyname: colonyName, blueprintname: blueprintName, status },
      prvKey,
      options,
    );
  }

  // Blueprint definitions: adding and removing are the colony owner's; reading, any member's or the owner's.
  // Colonies 1.9.12 has no update of a definition, and refuses (409) to remove one while blueprints of its kind exist.

  /** Registers a definition (colony owner key); the colony is `definition.metadata.colonyname`. */
  addBlueprintDefinition(
    definition: BlueprintDefinition,
    colonyPrvKey: string,
    options?: CallOptions,
  ): Promise<BlueprintDefinition> {
    return this.transport.call(
      { msgtype: "addblueprintdefinitionmsg", blueprintdefinition: definition },
      colonyPrvKey,
      options,
    );
  }

  /** A definition of the colony by name; rejects with a 404 ColoniesError when there is none. */
  getBlueprintDefinition(
    colonyName: string,
    name: string,
    prvKey: string,
    options?: CallOptions,
  ): Promise<BlueprintDefinition> {
    return this.transport.call(
      { msgtype: "getblueprintdefinitionmsg", colonyname: colonyName, name },
      prvKey,
      options,
    );
  }

  async getBlueprintDefinitions(
    colonyName: string,
    prvKey: string,
    options?: CallOptions,
  ): Promise<BlueprintDefinition[]> {
    const definitions = await this.transport.call<BlueprintDefinition[] | null>(
      { msgtype: "getblueprintdefinitionsmsg", colonyname: colonyName },
      prvKey,
      options,
    );
    return definitions ?? [];
  }

  /** Removes a definition by name (colony owner key); the message names the colony `namespace`. */
  removeBlueprintDefinition(
    colonyName: string,
    name: string,
    colonyPrvKey: string,
    options?: CallOptions,
  ): Promise<object> {
    return this.transport.call(
      { msgtype: "removeblueprintdefinitionmsg", namespace: colonyName, name },
      colonyPrvKey,
      options,
    );
  }

  async getFunctions(
    colonyName: string,
    executorName: string,
    prvKey: string,
    options?: CallOptions,
  ): Promise<ColoniesFunction[]> {
    const functions = await this.transport.call<ColoniesFunction[] | null>(
      { msgtype: "getfunctionsmsg", colonyname: colonyName, executorname: executorName },
      prvKey,
      options,
    );
    return functions ?? [];
  }
}

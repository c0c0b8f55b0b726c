/** The Colonies core JSON objects (server v1.9.x), as much of them as this project reads or writes. */

export const ProcessState = { WAITING: 0, RUNNING: 1, SUCCESS: 2, FAILED: 3, CANCELLED: 4 } as const;
export type ProcessStateValue = (typeof ProcessState)[keyof typeof ProcessState];

export const ExecutorState = { PENDING: 0, APPROVED: 1, REJECTED: 2, UNREGISTERED: 3 } as const;

export interface Conditions {
  colonyname: string;
  executortype?: string;
  executornames?: string[];
  dependencies?: string[];
}

export interface FunctionSpec {
  nodename?: string;
  funcname: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  priority?: number;
  maxwaittime?: number;
  /** Seconds; -1 is unlimited. 0 makes the server fail the process shortly after assignment. */
  maxexectime?: number;
  maxretries?: number;
  conditions: Conditions;
  label?: string;
  env?: Record<string, string>;
}

export interface Process {
  processid: string;
  initiatorid: string;
  initiatorname: string;
  assignedexecutorid: string;
  isassigned: boolean;
  state: ProcessStateValue;
  /** Nanoseconds; the server assigns in this order. */
  prioritytime?: number;
  submissiontime: string;
  starttime: string;
  endtime: string;
  retries: number;
  spec: FunctionSpec;
  in: unknown[] | null;
  out: unknown[] | null;
  errors: string[] | null;
}

export interface Executor {
  executorid: string;
  executortype: string;
  executorname: string;
  colonyname: string;
  state?: number;
  requirefuncreg?: boolean;
  commissiontime?: string;
  lastheardfromtime?: string;
  locationname?: string;
  capabilities?: { hardware?: unknown[]; software?: unknown[] };
  /** The blueprint whose reconciler made this executor, and the generation it was made for. */
  blueprintid?: string;
  blueprintgen?: number;
}

/** A blueprint's metadata (Colonies 1.9.12); `generation` grows with every change of its spec. */
export interface BlueprintMetadata {
  name: string;
  colonyname: string;
  locationname?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  generation?: number;
  createdAt?: string;
  updatedAt?: string;
  lastReconciliationProcess?: string;
  lastReconciliationTime?: string;
}

/** A declarative resource of a kind a BlueprintDefinition names; its status is the reconciler's to write. */
export interface Blueprint {
  blueprintid: string;
  kind: string;
  metadata: BlueprintMetadata;
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** A property of a BlueprintDefinition's schema (Colonies 1.9.12's subset of JSON schema). */
export interface BlueprintSchemaProperty {
  type?: string;
  description?: string;
  enum?: unknown[];
  default?: unknown;
  properties?: Record<string, BlueprintSchemaProperty>;
  items?: BlueprintSchemaProperty;
}

/**
 * A kind of blueprint (colony owner only): its names, the schema the server validates every blueprint of the kind
 * against, and the handler the server submits reconciliations to. `metadata.colonyname` is the colony.
 */
export interface BlueprintDefinition {
  /** Given by the server on add. */
  blueprintdefinitionid?: string;
  kind: string;
  metadata: { name: string; colonyname: string };
  spec: {
    group: string;
    version: string;
    names: { kind: string; listKind: string; singular: string; plural: string; shortNames?: string[] };
    scope: string;
    schema?: {
      type?: string;
      properties?: Record<string, BlueprintSchemaProperty>;
      required?: string[];
    };
    handler: { executorType: string; functionName: string; reconcileInterval?: number };
  };
}

export interface FunctionArg {
  name: string;
  type: string;
  description?: string;
  required?: boolean;
  enum?: string[];
}

export interface ColoniesFunction {
  functionid?: string;
  executorname: string;
  executortype: string;
  colonyname: string;
  funcname: string;
  description?: string;
  args?: FunctionArg[];
  counter?: number;
}

export interface LogEntry {
  processid: string;
  colonyname: string;
  executorname: string;
  message: string;
  /** Unix nanoseconds. */
  timestamp: number;
}

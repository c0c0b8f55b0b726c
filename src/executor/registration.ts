/**
 * Registration with the Colonies server, in one of two modes:
 * - self-registering (colony owner key given): add the executor, approve it, register its functions, and
 *   remove it on shutdown.
 * - pre-registered (executor key only): the executor already exists and is approved; only its functions
 *   are registered. Its name is looked up by the id of its key.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { ColoniesApi } from "../colonies/client.js";
import { idOf } from "../colonies/crypto.js";
import { ColoniesError } from "../colonies/errors.js";
import { type ColoniesFunction, ExecutorState, type FunctionArg } from "../colonies/types.js";
import type { RuntimeConfig } from "./config.js";
import type { ArgSpec, FunctionDef } from "./types.js";

export interface Registration {
  executorName: string;
  executorId: string;
  selfRegistered: boolean;
}

export function describeArgs(fn: FunctionDef): FunctionArg[] {
  const describe = (spec: ArgSpec, required: boolean): FunctionArg => ({
    name: spec.name,
    type: spec.type,
    description: spec.description,
    required,
    ...(spec.enum ? { enum: [...spec.enum] } : {}),
  });
  return [
    ...fn.args.map((spec) => describe(spec, !spec.optional)),
    ...(fn.kwargs ?? []).map((s) => describe(s, false)),
  ];
}

export async function register(
  client: ColoniesApi,
  config: RuntimeConfig,
  functions: readonly FunctionDef[],
  logger: Logger,
): Promise<Registration> {
  const executorId = idOf(config.executorPrvKey);
  let executorName = config.executorName;
  const selfRegistered = config.colonyPrvKey !== undefined;

  if (config.colonyPrvKey) {
    executorName = await addAndApprove(client, config, executorId, config.colonyPrvKey, logger);
  } else {
    executorName = await findOwnName(client, config, executorId);
  }

  for (const fn of functions) {
    const fun: ColoniesFunction = {
      executorname: executorName,
      executortype: config.executorType,
      colonyname: config.colonyName,
      funcname: fn.name,
      description: fn.description,
      args: describeArgs(fn),
    };
    try {
      await client.addFunction(fun, config.executorPrvKey);
    } catch (error) {
      // A pre-registered executor that restarts finds its functions already there.
      if (!(error instanceof ColoniesError && error.status === 400 && /exist/i.test(error.serverMessage)))
        throw error;
      logger.debug({ function: fn.name }, "function already registered");
    }
  }
  logger.info(
    { executor: executorName, type: config.executorType, colony: config.colonyName, selfRegistered },
    "registered",
  );
  return { executorName, executorId, selfRegistered };
}

/**
 * Adds and approves the executor; returns the name it got. Colonies (1.9.x) keeps removed executors as
 * UNREGISTERED records and refuses their names unless the server allows re-registration, so when the name is
 * taken (an earlier run of this executor that crashed or was removed), the old record is removed (re-queuing
 * its processes) and this run registers under the name with a short unique suffix.
 */
async function addAndApprove(
  client: ColoniesApi,
  config: RuntimeConfig,
  executorId: string,
  colonyPrvKey: string,
  logger: Logger,
): Promise<string> {
  const executor = {
    executorid: executorId,
    executortype: config.executorType,
    executorname: config.executorName,
    colonyname: config.colonyName,
    locationname: config.locationName,
  };
  try {
    await client.addExecutor(executor, colonyPrvKey);
  } catch (error) {
    if (
      !(error instanceof ColoniesError && error.status === 400 && /already exists/i.test(error.serverMessage))
    ) {
      throw error;
    }
    // Best effort: registering under a suffixed name does not depend on it, but say why the old record stays.
    await client.removeExecutor(config.colonyName, config.executorName, colonyPrvKey).catch((removeError) => {
      logger.warn(
        { err: removeError, executor: config.executorName },
        "could not remove the old record of this executor name; registering under a suffixed name anyway",
      );
    });
    executor.executorname = `${config.executorName}-${randomBytes(3).toString("hex")}`;
    logger.warn(
      { requested: config.executorName, registered: executor.executorname },
      "executor name already registered (set COLONIES_ALLOW_EXECUTOR_REREGISTER=true on the server to reuse names); using a suffixed name",
    );
    await client.addExecutor(executor, colonyPrvKey);
    await removeEarlierIncarnations(client, config, executor.executorname, colonyPrvKey, logger);
  }
  await client.approveExecutor(config.colonyName, executor.executorname, colonyPrvKey);
  return executor.executorname;
}

/**
 * Removes the records of this name's earlier runs that registered under a suffixed name (`<name>-<6 hex>`), as the
 * base name's record was removed above: an executor restarted under its name takes their place, and Colonies
 * re-queues what they were running at once instead of after its stale-executor timeout (600 s by default).
 * Only records of the same type; the new record (added, not yet approved) is a member and may list them.
 */
async function removeEarlierIncarnations(
  client: ColoniesApi,
  config: RuntimeConfig,
  current: string,
  colonyPrvKey: string,
  logger: Logger,
): Promise<void> {
  const incarnation = new RegExp(
    `^${config.executorName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-[0-9a-f]{6}$`,
  );
  try {
    const executors = await client.getExecutors(config.colonyName, config.executorPrvKey);
    for (const e of executors) {
      if (e.executorname === current || e.executortype !== config.executorType) continue;
      if (!incarnation.test(e.executorname) || e.state === ExecutorState.UNREGISTERED) continue;
      await client.removeExecutor(config.colonyName, e.executorname, colonyPrvKey);
      logger.info({ executor: e.executorname }, "removed the record of an earlier run of this executor");
    }
  } catch (error) {
    logger.warn({ err: error }, "could not remove the records of earlier runs of this executor");
  }
}

async function findOwnName(client: ColoniesApi, config: RuntimeConfig, executorId: string): Promise<string> {
  let executors: Awaited<ReturnType<ColoniesApi["getExecutors"]>>;
  try {
    executors = await client.getExecutors(config.colonyName, config.executorPrvKey);
  } catch (error) {
    if (error instanceof ColoniesError && error.status === 403) {
      throw new Error(
        `COLONIES_PRVKEY (executor id ${executorId}) is not an approved member of colony ${config.colonyName}: ` +
          "register and approve it first, or set COLONIES_COLONY_PRVKEY to let the executor register itself",
      );
    }
    throw error;
  }
  const own = executors.find((e) => e.executorid === executorId);
  if (!own) throw new Error(`no executor with id ${executorId} in colony ${config.colonyName}`);
  return own.executorname;
}

export async function deregister(
  client: ColoniesApi,
  config: RuntimeConfig,
  registration: Registration,
  logger: Logger,
): Promise<void> {
  if (!registration.selfRegistered || !config.colonyPrvKey) return;
  try {
    await client.removeExecutor(config.colonyName, registration.executorName, config.colonyPrvKey, {
      timeoutMs: 5_000,
    });
    logger.info({ executor: registration.executorName }, "deregistered");
  } catch (error) {
    logger.warn({ err: error, executor: registration.executorName }, "could not deregister");
  }
}

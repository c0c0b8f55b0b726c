/**
 * Executor identities of deployments. The k8s executor alone holds the colony owner key; each deployment runs
 * as one executor identity that this executor registers (adds and approves) before the first update and
 * removes after undeploy. Every container of the deployment gets that identity's key only (COLONIES_PRVKEY:
 * the runtime's pre-registered mode) and serves as that executor, the way the runtime's slots share one
 * identity; with its key a container can act as that executor and nothing more.
 *
 * Names carry a random suffix: Colonies 1.9 refuses a removed executor's name for good, and a deployment
 * undeployed and deployed again needs a fresh identity.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { ColoniesClient } from "../../colonies/client.js";
import { generatePrivateKey, idOf } from "../../colonies/crypto.js";
import { ColoniesError } from "../../colonies/errors.js";
import { ExecutorState } from "../../colonies/types.js";

/** `<deployment>-<6 hex>`: the name of a deployment's identity. */
const IDENTITY_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)-[0-9a-f]{6}$/;

export interface ExecutorIdentity {
  /** Executor name in the colony. */
  name: string;
  type: string;
  /** The identity's private key: a secret, kept only in the stack (encrypted) and the deployment's Secret. */
  prvKey: string;
}

export function isExecutorIdentity(value: unknown): value is ExecutorIdentity {
  const v = value as Partial<ExecutorIdentity> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.name === "string" &&
    typeof v.type === "string" &&
    typeof v.prvKey === "string"
  );
}

export interface IdentityRegistryOptions {
  client: ColoniesClient;
  colonyName: string;
  ownerKey: string;
  /** A member's key to list the colony's executors with (the runtime's own); the owner key otherwise. */
  readerKey?: string;
  /**
   * Shown as the executors' location by `colonies executor ls`; it also marks the identities this registry made
   * (per namespace and project), so that a sweep removes only those.
   */
  location: string;
  logger: Logger;
}

export class IdentityRegistry {
  constructor(private readonly options: IdentityRegistryOptions) {}

  /**
   * Registers and approves a new identity for a deployment's executors; one made for a blueprint carries its id
   * and generation, the link `colonies blueprint get` and `doctor` follow from a blueprint to its executors.
   */
  async create(
    deployment: string,
    type: string,
    signal?: AbortSignal,
    blueprint?: { id: string; generation: number },
  ): Promise<ExecutorIdentity> {
    const { client, colonyName, ownerKey, location } = this.options;
    const prvKey = generatePrivateKey();
    const name = `${deployment}-${randomBytes(3).toString("hex")}`;
    await client.addExecutor(
      {
        executorid: idOf(prvKey),
        executortype: type,
        executorname: name,
        colonyname: colonyName,
        locationname: location,
        ...(blueprint ? { blueprintid: blueprint.id, blueprintgen: blueprint.generation } : {}),
      },
      ownerKey,
      { signal },
    );
    try {
      await client.approveExecutor(colonyName, name, ownerKey, { signal });
    } catch (error) {
      await this.remove({ name });
      throw error;
    }
    this.options.logger.info(
      { executor: name, type, deployment },
      "registered a deployment's executor identity",
    );
    return { name, type, prvKey };
  }

  /**
   * The registered executors of `type` that are not the executors of `deployments` (this executor's): an identity
   * `<deployment>-<6 hex>`, or with K8S_CHILD_IDENTITY=colony a container's own `<pod>-executor-<i>`.
   */
  async othersOfType(type: string, deployments: readonly string[], signal?: AbortSignal): Promise<string[]> {
    const { client, colonyName, ownerKey, readerKey } = this.options;
    const executors = await client.getExecutors(colonyName, readerKey ?? ownerKey, { signal });
    const ours = new Set(deployments);
    const deploymentOf = (name: string) =>
      IDENTITY_NAME.exec(name)?.[1] ?? /^(.+)-[a-z0-9]{1,10}-[a-z0-9]{5}-executor-\d+$/.exec(name)?.[1];
    return executors
      .filter((e) => e.executortype === type && e.state !== ExecutorState.UNREGISTERED)
      .map((e) => e.executorname)
      .filter((name) => !ours.has(deploymentOf(name) ?? ""))
      .sort();
  }

  /**
   * The identities this registry registered that are still registered, by deployment: executors at its location
   * named `<deployment>-<6 hex>`. What a deploy or undeploy killed midway left behind is among them.
   */
  async registered(signal?: AbortSignal): Promise<Map<string, string[]>> {
    const { client, colonyName, ownerKey, readerKey, location } = this.options;
    const byDeployment = new Map<string, string[]>();
    for (const e of await client.getExecutors(colonyName, readerKey ?? ownerKey, { signal })) {
      const deployment = IDENTITY_NAME.exec(e.executorname)?.[1];
      if (!deployment || e.locationname !== location || e.state === ExecutorState.UNREGISTERED) continue;
      byDeployment.set(deployment, [...(byDeployment.get(deployment) ?? []), e.executorname]);
    }
    return byDeployment;
  }

  /**
   * Removes an identity for good (its processes, if any are running, go back to the queue). Idempotent: one
   * already gone counts as removed. Never throws: a failure is logged, and the identity is left to the next
   * sweep (or the colony owner).
   */
  async remove(identity: Pick<ExecutorIdentity, "name">): Promise<boolean> {
    const { client, colonyName, ownerKey, logger } = this.options;
    try {
      await client.removeExecutor(colonyName, identity.name, ownerKey, { timeoutMs: 10_000 });
      logger.info({ executor: identity.name }, "removed a deployment's executor identity");
      return true;
    } catch (error) {
      // Colonies 1.9.12 answers an unknown name with 500 "executor is nil".
      if (error instanceof ColoniesError && (error.notFound || /executor is nil/.test(error.serverMessage)))
        return true;
      logger.error(
        { err: error, executor: identity.name },
        "could not remove a deployment's executor identity; remove it with `colonies executor remove`",
      );
      return false;
    }
  }
}

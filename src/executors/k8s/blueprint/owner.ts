/**
 * A name has one owner: the functions or a blueprint. The server's cron reconciles every blueprint each minute, so
 * a deploy/scale/undeploy of a blueprint's deployment would be undone; and a blueprint must not take over a
 * deployment a function made. The stack's outputs (its blueprint record) say which owns a name.
 */
import { ProcessError } from "../../../executor/types.js";
import type { Recorded } from "../spec.js";

/** Refuses a function's change of a deployment a blueprint owns. */
export function assertNotBlueprints(fn: string, name: string, record: Recorded): void {
  if (!record.blueprint) return;
  throw new ProcessError(
    `${fn}: ${name} is the deployment of blueprint ${record.blueprint.name}; change it with \`colonies blueprint set/update --name ${record.blueprint.name}\` or remove it with \`colonies blueprint remove --name ${record.blueprint.name}\` (the blueprint's reconcile would undo this)`,
  );
}

/** Refuses a blueprint over a deployment the functions made. */
export function assertNotFunctions(fn: string, name: string, record: Recorded): void {
  if (!record.spec || record.blueprint) return;
  throw new ProcessError(
    `${fn}: a deployment named ${name} was made by the deploy function, not from a blueprint; undeploy it first or give the blueprint another name`,
  );
}

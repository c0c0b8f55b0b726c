/**
 * The k8s executor's one error boundary: whatever a function's work throws (typed stack errors, Pulumi engine
 * failures, Kubernetes API errors, budget refusals) becomes the ProcessError the caller sees, "<fn>: <first
 * meaningful line>", with the long text as details for the process log. Aborts (shutdown) pass through: the
 * runtime fails the process with the abort's reason.
 */
import { ApiException } from "@kubernetes/client-node";
import { CommandError } from "@pulumi/pulumi/automation/index.js";
import { KubeApiError, statusMessage } from "../../atoms/kube-api.js";
import { ColoniesError } from "../../colonies/errors.js";
import { ProcessError } from "../../executor/types.js";
import {
  DeadlineError,
  EngineError,
  meaningfulLine,
  StackLockedError,
  UnknownStackError,
} from "../../k8s/stack-errors.js";
import { BudgetError } from "./budget.js";

/** The error to fail a process of function `fn` with. */
export function callerError(fn: string, error: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted) return error;
  if (error instanceof ProcessError) return error;
  if (
    error instanceof UnknownStackError ||
    error instanceof StackLockedError ||
    error instanceof DeadlineError ||
    error instanceof BudgetError ||
    error instanceof KubeApiError
  ) {
    return new ProcessError(`${fn}: ${error.message}`);
  }
  if (error instanceof EngineError) return new ProcessError(`${fn}: ${error.message}`, error.output);
  // A CLI failure outside an update (e.g. reading the outputs); its secrets are masked already (redacted-cli.ts).
  if (error instanceof CommandError) {
    return new ProcessError(`${fn}: ${meaningfulLine(error.message)}`, error.message);
  }
  if (error instanceof ApiException) return new ProcessError(`${fn}: ${statusMessage(error)}`);
  if (error instanceof ColoniesError) {
    return new ProcessError(`${fn}: registering the deployment's executor identity failed: ${error.message}`);
  }
  return error;
}

/** Runs a function's work through the boundary. */
export async function guarded<T>(fn: string, signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw callerError(fn, error, signal);
  }
}

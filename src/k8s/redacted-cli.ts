/**
 * The Pulumi CLI with secrets masked in its failures. A CLI error quotes what the CLI was given, e.g. the state
 * backend's URL with its database password ("unable to open state database postgres://user:password@…"), and
 * such errors reach logs and the process logs of callers. Every CommandError keeps its class
 * (StackNotFoundError, ConcurrentUpdateError, …) and its text, with the secrets masked; the child process's raw
 * error (the same text once more) is dropped.
 */
import { CommandError, type PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import { redactText } from "../executor/redact.js";

interface Result {
  stdout: string;
  stderr: string;
  err?: unknown;
}

/** `command`, whose every run's failure has `secrets` and URL passwords masked. */
export function redactingFailures(command: PulumiCommand, secrets: readonly string[]): PulumiCommand {
  const target = command as unknown as { run: (...args: unknown[]) => Promise<unknown> };
  const run = target.run.bind(command);
  target.run = async (...args: unknown[]) => {
    try {
      return await run(...args);
    } catch (error) {
      throw redactCommandError(error, secrets);
    }
  };
  return command;
}

/** The same error, its secrets masked (errors other than the CLI's are returned as they are). */
export function redactCommandError(error: unknown, secrets: readonly string[]): unknown {
  if (!(error instanceof CommandError)) return error;
  const mask = (text: string) => redactText(text, secrets);
  error.message = mask(error.message);
  if (error.stack) error.stack = mask(error.stack);
  const result = (error as unknown as { commandResult?: Result }).commandResult;
  if (result) {
    result.stdout = mask(result.stdout);
    result.stderr = mask(result.stderr);
    result.err = undefined;
  }
  return error;
}

/**
 * Exit codes to results, shared by every engine. Codes follow the shell and container-runtime conventions:
 * 128 + n for "killed by signal n", 126 "found but could not be executed", 127 "not found".
 */
import type { AtomResult } from "./engine.js";

export const EXIT_CANNOT_EXECUTE = 126;
export const EXIT_NOT_FOUND = 127;
export const EXIT_SIGKILL = 137;
export const EXIT_SIGTERM = 143;

export function resultOfExitCode(exitCode: number): AtomResult {
  switch (exitCode) {
    case 0:
      return "success";
    case EXIT_SIGKILL:
      return "killed";
    case EXIT_SIGTERM:
      return "terminated";
    case EXIT_CANNOT_EXECUTE:
    case EXIT_NOT_FOUND:
      return "startup_failure";
    default:
      return "failure";
  }
}

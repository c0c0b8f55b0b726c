/**
 * Reads typed settings from environment variables and collects every problem, so that start-up reports all
 * of them at once, each naming its variable. Empty values count as unset, as in a shell. (Hand-written rather
 * than a schema library: it keeps an idle executor small, and the rules are few.)
 */
import { ConfigError } from "./types.js";

export class EnvReader {
  readonly problems: string[] = [];

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === "" ? undefined : value;
  }

  string(name: string, check?: { pattern: RegExp; expected: string }): string | undefined {
    const value = this.raw(name);
    if (value !== undefined && check && !check.pattern.test(value)) {
      this.problems.push(`${name} must be ${check.expected}`);
      return undefined;
    }
    return value;
  }

  required(name: string, check?: { pattern: RegExp; expected: string }): string {
    const value = this.string(name, check);
    if (value === undefined && this.raw(name) === undefined) this.problems.push(`${name} is required`);
    return value ?? "";
  }

  int(name: string, min: number, max: number): number | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) {
      this.problems.push(`${name} must be a whole number`);
      return undefined;
    }
    const n = Number(value);
    if (n < min || n > max) {
      this.problems.push(`${name} must be between ${min} and ${max}`);
      return undefined;
    }
    return n;
  }

  bool(name: string): boolean | undefined {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return undefined;
    if (value !== "true" && value !== "false") {
      this.problems.push(`${name} must be "true" or "false"`);
      return undefined;
    }
    return value === "true";
  }

  oneOf<T extends string>(name: string, values: readonly T[]): T | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!(values as readonly string[]).includes(value)) {
      this.problems.push(`${name} must be one of ${values.join(", ")}`);
      return undefined;
    }
    return value as T;
  }

  /** Throws one ConfigError listing every problem found so far. */
  check(what: string): void {
    if (this.problems.length > 0)
      throw new ConfigError(`invalid ${what}:\n  - ${this.problems.join("\n  - ")}`);
  }
}

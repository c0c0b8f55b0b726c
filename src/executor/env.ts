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

  /**
   * Aliases: the first of `name` and `aliases` that is set, else `name`. Every reader takes its result, e.g.
   * `e.int(e.first("DB_PORT", "PGPORT"), 1, 65535)`: the first name set wins, and a problem names the variable
   * that was actually set. Names after the first set one are not read.
   */
  first(name: string, ...aliases: string[]): string {
    return [name, ...aliases].find((n) => this.raw(n) !== undefined) ?? name;
  }

  /**
   * A secret (a password, a key) from the first of `names` that is set. The value is kept verbatim, not
   * trimmed, and never goes into a problem; only an empty value counts as unset.
   */
  secret(...names: string[]): string | undefined {
    for (const name of names) {
      const value = this.env[name];
      if (value !== undefined && value !== "") return value;
    }
    return undefined;
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

  /** One of `values`; with `ignoreCase`, "S3" is read as "s3" (the spelling in `values` is returned). */
  oneOf<T extends string>(
    name: string,
    values: readonly T[],
    options: { ignoreCase?: boolean } = {},
  ): T | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const found = options.ignoreCase
      ? values.find((v) => v.toLowerCase() === value.toLowerCase())
      : values.find((v) => v === value);
    if (found === undefined) {
      this.problems.push(`${name} must be one of ${values.join(", ")}`);
      return undefined;
    }
    return found;
  }

  /** Throws one ConfigError listing every problem found so far. */
  check(what: string): void {
    if (this.problems.length > 0)
      throw new ConfigError(`invalid ${what}:\n  - ${this.problems.join("\n  - ")}`);
  }
}

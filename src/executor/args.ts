/**
 * Argument parsing shared by every executor. Arguments come positionally in signature order or by name
 * (kwargs). The official CLI sends everything as strings, so coercion is strict: "2" is an int, "2.5" and
 * "abc" are not; "true"/"false" are booleans. Every error names the function, the argument and what was expected.
 */
import { type ArgSpec, type ArgValue, type FunctionDef, type ParsedArgs, ProcessError } from "./types.js";

const INTEGER = /^[+-]?\d+$/;

function describe(spec: ArgSpec): string {
  if (spec.type === "int") {
    if (spec.min !== undefined && spec.max !== undefined)
      return `a whole number from ${spec.min} to ${spec.max}`;
    if (spec.min !== undefined) return `a whole number >= ${spec.min}`;
    return "a whole number";
  }
  if (spec.type === "bool") return '"true" or "false"';
  if (spec.enum) return `one of ${spec.enum.join(", ")}`;
  return "a non-empty string";
}

function show(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : `${JSON.stringify(value)} (${typeof value})`;
}

export function coerce(fn: string, spec: ArgSpec, value: unknown): ArgValue {
  const fail = (): never => {
    throw new ProcessError(`${fn}: argument ${spec.name} must be ${describe(spec)}, got ${show(value)}`);
  };
  switch (spec.type) {
    case "int": {
      let n: number;
      if (typeof value === "number") n = value;
      else if (typeof value === "string" && INTEGER.test(value.trim())) n = Number(value.trim());
      else return fail();
      if (!Number.isSafeInteger(n)) return fail();
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) return fail();
      return n;
    }
    case "bool": {
      if (typeof value === "boolean") return value;
      if (typeof value === "string") {
        const v = value.trim().toLowerCase();
        if (v === "true") return true;
        if (v === "false") return false;
      }
      return fail();
    }
    case "string": {
      if (typeof value !== "string" || value.trim() === "") return fail();
      if (spec.enum && !spec.enum.includes(value)) return fail();
      const problem = spec.check?.(value);
      if (problem !== undefined) throw new ProcessError(`${fn}: ${problem}`);
      if (!spec.parse) return value;
      const parsed = spec.parse(value);
      if ("problem" in parsed) throw new ProcessError(`${fn}: ${parsed.problem}`);
      return parsed.value;
    }
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function signature(fn: FunctionDef): string {
  return `${fn.name}(${fn.args.map((a) => `${a.name}${a.optional ? "?" : ""}`).join(", ")})`;
}

/** Parses one process's `args` and `kwargs` against a function's signature. Throws ProcessError. */
export function parseArguments(fn: FunctionDef, args: unknown, kwargs: unknown): ParsedArgs {
  const positional = Array.isArray(args) ? args : args == null ? [] : null;
  if (positional === null) throw new ProcessError(`${fn.name}: args must be a list`);
  const named: Record<string, unknown> =
    kwargs != null && typeof kwargs === "object" && !Array.isArray(kwargs)
      ? (kwargs as Record<string, unknown>)
      : {};

  if (positional.length > fn.args.length) {
    throw new ProcessError(
      `${fn.name}: expected at most ${plural(fn.args.length, "argument")} ${signature(fn)}, got ${positional.length}`,
    );
  }
  const extras = fn.kwargs ?? [];
  const known = new Map([...fn.args, ...extras].map((spec) => [spec.name, spec]));
  const unknown = Object.keys(named).filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new ProcessError(
      `${fn.name}: unknown argument ${unknown.join(", ")}; accepted: ${[...known.keys()].join(", ") || "none"}`,
    );
  }

  const parsed: ParsedArgs = {};
  fn.args.forEach((spec, i) => {
    const byPosition = positional[i];
    const byName = named[spec.name];
    if (byPosition != null && byName != null) {
      throw new ProcessError(`${fn.name}: argument ${spec.name} given both by position and by name`);
    }
    const value = byPosition ?? byName;
    if (value == null) {
      if (!spec.optional) {
        throw new ProcessError(
          `${fn.name}: missing argument ${spec.name} (${describe(spec)}); signature ${signature(fn)}`,
        );
      }
      return;
    }
    parsed[spec.name] = coerce(fn.name, spec, value);
  });
  for (const spec of extras) {
    const value = named[spec.name];
    if (value != null) parsed[spec.name] = coerce(fn.name, spec, value);
  }
  return parsed;
}

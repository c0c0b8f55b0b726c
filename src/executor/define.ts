/**
 * `defineFunction`: a function table entry whose handler gets its arguments typed from the declared specs
 * (`int` → number, `bool` → boolean, `string` → string or what its `parse` makes of it; optional positionals and every kwarg may be
 * undefined). The parser has already coerced and checked them, so handlers need no casts or re-checks.
 */
import type { ArgSpec, FunctionDef, ProcessContext } from "./types.js";

type ValueOf<S extends ArgSpec> = S extends { parse: (value: string) => infer R }
  ? R extends { value: infer T }
    ? T
    : never
  : S["type"] extends "int"
    ? number
    : S["type"] extends "bool"
      ? boolean
      : string;

type Positional<A extends readonly ArgSpec[]> = {
  [S in A[number] as S["name"]]: S["optional"] extends true ? ValueOf<S> | undefined : ValueOf<S>;
};
type Named<K extends readonly ArgSpec[]> = { [S in K[number] as S["name"]]?: ValueOf<S> };

export type ArgsOf<A extends readonly ArgSpec[], K extends readonly ArgSpec[]> = Positional<A> & Named<K>;

export function defineFunction<
  const A extends readonly ArgSpec[],
  const K extends readonly ArgSpec[] = [],
>(def: {
  name: string;
  description: string;
  args: A;
  kwargs?: K;
  handler(args: ArgsOf<A, K>, ctx: ProcessContext): Promise<unknown[]>;
}): FunctionDef {
  return def as unknown as FunctionDef;
}

/**
 * Kubernetes' `$(VAR)` expansion, as the kubelet applies it to env values, commands and args (the rules of
 * k8s.io/kubernetes third_party/forked/golang/expansion): `$(NAME)` becomes the variable's value when it is
 * defined and stays as written when not; `$$` is an escaped `$` (so `$$(NAME)` gives the text `$(NAME)`); any
 * other `$`, and a `$(` with no closing parenthesis, are kept as they are.
 */
export function expandVars(input: string, lookup: (name: string) => string | undefined): string {
  let output = "";
  let cursor = 0;
  while (cursor < input.length) {
    const dollar = input.indexOf("$", cursor);
    // A `$` as the last character has nothing to introduce: it is copied with the rest.
    if (dollar === -1 || dollar === input.length - 1) break;
    output += input.slice(cursor, dollar);
    const next = input[dollar + 1];
    if (next === "$") {
      output += "$";
      cursor = dollar + 2;
    } else if (next === "(") {
      const close = input.indexOf(")", dollar + 2);
      if (close === -1) {
        output += "$(";
        cursor = dollar + 2;
      } else {
        const name = input.slice(dollar + 2, close);
        output += lookup(name) ?? `$(${name})`;
        cursor = close + 1;
      }
    } else {
      output += `$${next}`;
      cursor = dollar + 2;
    }
  }
  return output + input.slice(cursor);
}

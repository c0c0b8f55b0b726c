/**
 * The rules of the k8s executor's names and values, shared by its configuration and its function tables. Each
 * check returns what is wrong (a phrase that completes "<function>: ") or undefined: the function tables declare
 * them on their arguments (ArgSpec.check), so handlers only ever see values that passed.
 */

/** A DNS-1123 label: namespaces, and deployment names (which become Deployment, Secret, stack and label names). */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Pods are named <deployment>-<hash (up to 10)>-<5 random>; Kubernetes cuts that prefix at 58 characters. */
export const MAX_DEPLOYMENT_NAME = 46;
/** A pod name as Kubernetes allows it (DNS-1123 subdomain). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Colonies executor names and types. */
export const EXECUTOR_TYPE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Kubernetes resource quantities, e.g. 250m, 1, 512Mi, 2Gi (a decimal number with an optional suffix). */
export const QUANTITY = /^\+?(\d+\.?\d*|\.\d+)([eE][-+]?\d+|[numkMGTPE]|[KMGTPE]i)?$/;
/** A Secret name the operator may let callers reference: a DNS-1123 subdomain (at most 253 characters). */
export const SECRET_NAME = DNS_SUBDOMAIN;

/**
 * A container image reference: [registry[:port]/]path[:tag][@digest], per the distribution reference grammar
 * (path components lower-case; tag up to 128 characters; digest algorithm:hex).
 */
const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const DOMAIN =
  "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?";
export const IMAGE = new RegExp(
  `^(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`,
);

export function deploymentNameProblem(name: string): string | undefined {
  if (name.length > MAX_DEPLOYMENT_NAME) {
    return `deployment name "${name}" is ${name.length} characters; at most ${MAX_DEPLOYMENT_NAME} (pod names derive from it)`;
  }
  if (!DNS_LABEL.test(name)) {
    return `deployment name "${name}" must be lower-case letters, digits and '-', starting and ending with a letter or digit`;
  }
  return undefined;
}

export function podNameProblem(name: string): string | undefined {
  return name.length > 253 || !DNS_SUBDOMAIN.test(name) ? `"${name}" is not a valid pod name` : undefined;
}

export function imageProblem(image: string): string | undefined {
  return image.length > 512 || !IMAGE.test(image)
    ? `"${image}" is not a valid image reference (expected e.g. registry.example.com/team/executor:1.2.3)`
    : undefined;
}

export function executorTypeProblem(type: string): string | undefined {
  return EXECUTOR_TYPE.test(type)
    ? undefined
    : `executortype "${type}" must be 1-128 letters, digits, '.', '_' or '-'`;
}

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The value of a Kubernetes quantity in base units (cores, bytes); undefined when it is not one. */
export function parseQuantity(text: string): number | undefined {
  const match = QUANTITY.exec(text);
  if (!match) return undefined;
  const [, number, suffix] = match as unknown as [string, string, string | undefined];
  let value = Number(number);
  if (suffix && /^[eE]/.test(suffix)) value *= 10 ** Number(suffix.slice(1));
  else if (suffix) value *= SUFFIX[suffix] ?? Number.NaN;
  return Number.isFinite(value) ? value : undefined;
}

/** A quantity argument within (0, max]; `what` names it ("cpu", "memory"...). */
export function quantityProblem(what: string, text: string, max?: { value: number; text: string }) {
  const value = parseQuantity(text);
  if (value === undefined) return `${what} "${text}" is not a Kubernetes quantity (e.g. 250m, 1, 512Mi, 2Gi)`;
  if (value <= 0) return `${what} "${text}" must be more than zero`;
  if (max && value > max.value) return `${what} "${text}" is more than the largest allowed, ${max.text}`;
  return undefined;
}

/** Checks done before anything touches the cluster; each names what was wrong. */
import { ProcessError } from "../executor/types.js";

/** Deployment names become Deployment, Secret and stack names and label values: a DNS-1123 label. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Pods are named <deployment>-<hash (up to 10)>-<5 random>; Kubernetes cuts that prefix at 58 characters. */
export const MAX_DEPLOYMENT_NAME = 46;

export function validateDeploymentName(fn: string, name: string): string {
  if (name.length > MAX_DEPLOYMENT_NAME) {
    throw new ProcessError(
      `${fn}: deployment name "${name}" is ${name.length} characters; at most ${MAX_DEPLOYMENT_NAME} (pod names derive from it)`,
    );
  }
  if (!DNS_LABEL.test(name)) {
    throw new ProcessError(
      `${fn}: deployment name "${name}" must be lower-case letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
  return name;
}

/** A pod name as Kubernetes allows it (DNS-1123 subdomain). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function validatePodName(fn: string, name: string): string {
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw new ProcessError(`${fn}: "${name}" is not a valid pod name`);
  }
  return name;
}

/**
 * A container image reference: [registry[:port]/]path[:tag][@digest], per the distribution reference grammar
 * (path components lower-case; tag up to 128 characters; digest algorithm:hex).
 */
const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const DOMAIN =
  "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?";
const IMAGE = new RegExp(
  `^(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`,
);

export function validateImage(fn: string, image: string): string {
  if (image.length > 512 || !IMAGE.test(image)) {
    throw new ProcessError(
      `${fn}: "${image}" is not a valid image reference (expected e.g. registry.example.com/team/executor:1.2.3)`,
    );
  }
  return image;
}

/** Kubernetes resource quantities, e.g. 250m, 1, 512Mi, 2Gi. */
const QUANTITY = /^([+]?[0-9.]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$/;

export function validateQuantity(what: string, value: string): string {
  if (!QUANTITY.test(value) || Number.isNaN(Number.parseFloat(value))) {
    throw new ProcessError(`${what} "${value}" is not a Kubernetes quantity (e.g. 250m, 1, 512Mi, 2Gi)`);
  }
  return value;
}

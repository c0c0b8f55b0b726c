/**
 * The operator's rules on what callers may deploy, checked before any Pulumi update starts. Nothing is allowed
 * until the operator says so:
 * - images and cmd strings match glob patterns (K8S_ALLOWED_IMAGES, K8S_ALLOWED_CMDS);
 * - a Secret is referenced only through a profile that binds it to the deployment's image and cmd (K8S_PROFILES,
 *   under the ceiling K8S_ALLOWED_SECRETS), and then only that profile's env names may be set beside it;
 *   Secrets that hold executor keys are never referable, whatever the patterns say;
 * - env names match K8S_ALLOWED_ENV or a profile for the image;
 * - executor types are the deployment's own name or match K8S_ALLOWED_EXECUTOR_TYPES;
 * - tolerated taint keys match K8S_ALLOWED_TOLERATIONS.
 */
import picomatch from "picomatch";
import type { K8sConfig } from "./config.js";
import type { Profile } from "./profiles.js";

/** A glob allow-list; `*` stays within a path segment, `**` crosses them (picomatch's rules). */
class AllowList {
  private readonly matchers: ((value: string) => boolean)[];
  constructor(
    readonly patterns: readonly string[],
    options: picomatch.PicomatchOptions = {},
  ) {
    // "" is a value of its own (a cmd list's "the image's own command"), not a pattern.
    this.matchers = patterns.map((p) =>
      p === "" ? (value: string) => value === "" : picomatch(p, { dot: true, ...options }),
    );
  }
  allows(value: string): boolean {
    return this.matchers.some((match) => match(value));
  }
  get text(): string {
    return this.patterns.length ? this.patterns.join(", ") : "none";
  }
}

/** `<name>-keys` is where every ExecutorDeployment (this executor's and infra's) keeps its keys. */
export const KEYS_SECRET = /-keys$/;

/** What a deployment uses that the profiles govern. */
export interface Use {
  image: string;
  /** The cmd as one line ("" for the image's own command). */
  cmd: string;
  secrets: string[];
  env: string[];
}

interface CompiledProfile {
  name: string;
  images: AllowList;
  cmds?: AllowList;
  secrets: AllowList;
  env: AllowList;
}

function compile(name: string, profile: Profile): CompiledProfile {
  return {
    name,
    images: new AllowList(profile.images),
    ...(profile.cmds ? { cmds: new AllowList(profile.cmds, { bash: true }) } : {}),
    secrets: new AllowList(profile.secrets ?? []),
    env: new AllowList(profile.env ?? []),
  };
}

export class DeployPolicy {
  private readonly images: AllowList;
  private readonly cmds: AllowList;
  private readonly secretCeiling?: AllowList;
  private readonly env: AllowList;
  private readonly executorTypes: AllowList;
  private readonly tolerations: AllowList;
  private readonly profiles: CompiledProfile[];
  private readonly runtimeImages: AllowList;

  constructor(policy: Pick<K8sConfig["policy"], "images" | "cmds"> & Partial<K8sConfig["policy"]>) {
    this.images = new AllowList(policy.images);
    // A cmd is a line of arguments, not a path: '*' matches across '/' there.
    this.cmds = new AllowList(policy.cmds, { bash: true });
    if (policy.secrets?.length) this.secretCeiling = new AllowList(policy.secrets);
    this.env = new AllowList(policy.env ?? []);
    this.executorTypes = new AllowList(policy.executorTypes ?? []);
    this.tolerations = new AllowList(policy.tolerations ?? []);
    this.profiles = Object.entries(policy.profiles ?? {}).map(([name, p]) => compile(name, p));
    this.runtimeImages = new AllowList(policy.runtimeImages ?? []);
  }

  /** Whether the image is built on this runtime (it serves /readyz once registered). */
  isRuntimeImage(image: string): boolean {
    return this.runtimeImages.allows(image);
  }

  imageProblem(image: string): string | undefined {
    if (this.images.allows(image)) return undefined;
    if (this.images.patterns.length === 0) {
      return `image ${image} is not allowed: no image is, until the operator lists the allowed ones in K8S_ALLOWED_IMAGES (e.g. registry.example.com/colonyos/*)`;
    }
    return `image ${image} is not allowed by K8S_ALLOWED_IMAGES (${this.images.text})`;
  }

  cmdProblem(cmd: string): string | undefined {
    if (this.cmds.allows(cmd)) return undefined;
    if (this.cmds.patterns.length === 0) {
      return `cmd "${cmd}" is not allowed: no cmd is, until the operator lists the allowed ones in K8S_ALLOWED_CMDS (deploy without cmd runs the image's own command)`;
    }
    return `cmd "${cmd}" is not allowed by K8S_ALLOWED_CMDS (${this.cmds.text})`;
  }

  /** Whether a Secret may be referenced at all (before knowing by which image): the rules of the name alone. */
  secretProblem(secret: string): string | undefined {
    if (KEYS_SECRET.test(secret)) {
      return `Secret ${secret} may never be referenced: Secrets named *-keys hold the keys of ColonyOS executors (this executor's deployments and infra's executors), whatever K8S_ALLOWED_SECRETS and K8S_PROFILES say`;
    }
    if (this.secretCeiling && !this.secretCeiling.allows(secret)) {
      return `Secret ${secret} may not be referenced: it is not allowed by K8S_ALLOWED_SECRETS (${this.secretCeiling.text})`;
    }
    if (!this.profiles.some((p) => p.secrets.allows(secret))) {
      return `Secret ${secret} may not be referenced: no profile of K8S_PROFILES binds it to an image (${this.profileList()})`;
    }
    return undefined;
  }

  executorTypeProblem(type: string, deployment: string): string | undefined {
    if (type === deployment || this.executorTypes.allows(type)) return undefined;
    return `executortype "${type}" is not allowed: a deployment's executors take its own name (${deployment}) as their type unless K8S_ALLOWED_EXECUTOR_TYPES (${this.executorTypes.text}) allows another`;
  }

  tolerationProblem(key: string): string | undefined {
    if (this.tolerations.allows(key)) return undefined;
    return `tolerations may not name the taint ${key}: it is not allowed by K8S_ALLOWED_TOLERATIONS (${this.tolerations.text})`;
  }

  /**
   * Whether the Secrets and env names of a deployment fit its image and cmd: every Secret must be bound to them
   * by one profile, which then also decides the env names; without Secrets, an env name is allowed by
   * K8S_ALLOWED_ENV or by any profile for the image and cmd.
   */
  useProblem(use: Use): string | undefined {
    const fitting = this.profiles.filter(
      (p) => p.images.allows(use.image) && (!p.cmds || p.cmds.allows(use.cmd)),
    );
    const what = `image ${use.image} ${use.cmd ? `with cmd "${use.cmd}"` : "with its own command"}`;
    if (use.secrets.length > 0) {
      const binding = fitting.filter((p) => use.secrets.every((s) => p.secrets.allows(s)));
      if (binding.length === 0) {
        const unbound =
          use.secrets.find((s) => !fitting.some((p) => p.secrets.allows(s))) ?? use.secrets.join(", ");
        const bound = this.profiles.filter((p) => p.secrets.allows(unbound)).map((p) => p.name);
        return `Secret ${unbound} is not bound to ${what}: ${
          bound.length
            ? `the profile(s) binding it (${bound.join(", ")}) do not allow this image and cmd`
            : "no profile binds it"
        }${use.secrets.length > 1 ? ", or not together with the other Secrets" : ""} (K8S_PROFILES)`;
      }
      const profile = binding.find((p) => use.env.every((n) => p.env.allows(n)));
      if (profile) return undefined;
      const [first] = binding as [CompiledProfile];
      const refused = use.env.find((n) => !first.env.allows(n)) as string;
      return `env ${refused} may not be set beside Secret(s) ${use.secrets.join(", ")}: profile ${first.name} allows env ${first.env.text} (K8S_PROFILES)`;
    }
    const refused = use.env.find((n) => !this.env.allows(n) && !fitting.some((p) => p.env.allows(n)));
    if (refused === undefined) return undefined;
    return `env ${refused} may not be set for ${what}: K8S_ALLOWED_ENV (${this.env.text}) and the profiles for this image (${
      fitting.map((p) => p.name).join(", ") || "none"
    }) do not allow it`;
  }

  private profileList(): string {
    return this.profiles.length ? `profiles: ${this.profiles.map((p) => p.name).join(", ")}` : "none defined";
  }
}

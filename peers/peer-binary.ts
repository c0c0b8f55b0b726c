/**
 * Where the peer scripts (scripts/peers/*.sh) keep what they build, as lib.sh computes it, and the binary one of
 * them pins: found without running the script, or an error saying what to run (tests never skip a missing peer).
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** lib.sh's PEERS_CACHE: COLONYOS_PEERS_CACHE, else <XDG_CACHE_HOME or ~/.cache>/colonyos-executors/peers. */
export function peersCache(): string {
  if (process.env.COLONYOS_PEERS_CACHE) return process.env.COLONYOS_PEERS_CACHE;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "colonyos-executors", "peers");
}

/**
 * The binary `script` builds into `<cache>/<name>-<version>/<name>`, its version read from the script's
 * `<versionVariable>=` line so that the two never disagree; `envVariable`, when set, names it instead.
 */
export function pinnedBinary(options: {
  /** The peer script, relative to the repository, e.g. scripts/peers/minio.sh. */
  script: string;
  versionVariable: string;
  name: string;
  envVariable: string;
  /** How errors name the peer, e.g. MinIO. */
  what: string;
}): string {
  const { script, versionVariable, name, envVariable, what } = options;
  const fromEnv = process.env[envVariable];
  if (fromEnv) {
    if (!existsSync(fromEnv))
      throw new Error(`${envVariable}=${fromEnv} does not exist; run: bash ${script}`);
    return fromEnv;
  }
  const text = readFileSync(join(ROOT, script), "utf8");
  const version = new RegExp(`^${versionVariable}=(\\S+)$`, "m").exec(text)?.[1];
  if (!version) throw new Error(`cannot read ${versionVariable} from ${script}`);
  const bin = join(peersCache(), `${name}-${version}`, name);
  if (!existsSync(bin))
    throw new Error(`${what} ${version} is not built (${bin} missing); run: bash ${script}`);
  return bin;
}

/**
 * Where the k8s executor reads blueprints and writes their status: the Colonies server, signed with the runtime's
 * executor key (a colony member's, which the blueprint RPCs require), at the runtime's location.
 */
import type { ColoniesClient } from "../../../colonies/client.js";
import { ColoniesError } from "../../../colonies/errors.js";
import type { Blueprint } from "../../../colonies/types.js";

export interface BlueprintSource {
  /** The location this executor serves (EXECUTOR_LOCATION; empty: every location). */
  location: string;
  /** The blueprint of that name, or undefined when there is none. */
  get(name: string, signal: AbortSignal): Promise<Blueprint | undefined>;
  /** The blueprints of `kind` at this executor's location. */
  list(kind: string, signal: AbortSignal): Promise<Blueprint[]>;
  writeStatus(name: string, status: Record<string, unknown>, signal: AbortSignal): Promise<void>;
}

export function coloniesBlueprints(
  client: ColoniesClient,
  colonyName: string,
  prvKey: string,
  location: string,
): BlueprintSource {
  return {
    location,
    async get(name, signal) {
      try {
        return await client.getBlueprint(colonyName, name, prvKey, { signal });
      } catch (error) {
        if (error instanceof ColoniesError && error.notFound) return undefined;
        throw error;
      }
    },
    list: (kind, signal) => client.getBlueprints(colonyName, kind, location, prvKey, { signal }),
    async writeStatus(name, status, signal) {
      await client.updateBlueprintStatus(colonyName, name, status, prvKey, { signal });
    },
  };
}

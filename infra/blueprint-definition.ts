/**
 * A BlueprintDefinition registered in a colony, as a Pulumi dynamic resource: `pulumi up` adds it (signed with the
 * colony owner key), `pulumi destroy` removes it, a changed definition (schema, handler) updates it, and
 * `pulumi refresh` (or `up --refresh`) notices when it is gone from the server, so that the next `up` adds it again.
 * `pulumi preview` only plans: it never calls the server.
 *
 * How the provider reaches this code. Pulumi runs a dynamic provider in a process of its own (the
 * `pulumi-resource-pulumi-nodejs` plugin, which the official Pulumi distribution ships next to the CLI: plain `node`
 * in the program's directory, without tsx) and gives it the provider as JavaScript text that it serialized from the
 * program's closures. That serialization cannot follow this ESM/tsx program's imports: a provider whose methods call
 * the Colonies client directly fails with `error serializing property "__provider": ... function 'createHash' ...
 * could not be serialized because function is not a bound function` (node:crypto, reached through the client's
 * signing). So the serialized provider below is a self-contained shim: each method loads this very module at call
 * time, through tsx's `tsImport`, found from the provider process's working directory (infra/, or the project
 * root), and calls `operations`. The shim captures nothing but itself, and it is what the state keeps: a later
 * destroy runs the project's current code.
 *
 * The colony owner key is an input like the others, so it lives in the state: it is passed as a secret and declared
 * a secret output, so the state keeps it encrypted; no message here ever includes it.
 */
import * as pulumi from "@pulumi/pulumi";
import { ColoniesClient } from "../src/colonies/client.js";
import { ColoniesError } from "../src/colonies/errors.js";
import type { BlueprintDefinition } from "../src/colonies/types.js";

/** Where `pulumi up` reaches the Colonies server (may differ from the address the pods use). */
export interface ColoniesAddress {
  host: string;
  port: number;
  tls: boolean;
}

/** The resource's inputs, as the provider receives them (secrets unwrapped). */
export interface DefinitionInputs {
  server: ColoniesAddress;
  colonyPrvKey: string;
  /** The definition to register; `metadata.colonyname` is the colony. */
  definition: BlueprintDefinition;
}

/** Its state: the inputs, the definition as registered, and the id the server gave it. */
export interface DefinitionOutputs extends DefinitionInputs {
  definitionId: string;
}

/** Drops what the server's JSON leaves out when empty (Go `omitempty`), so that equal definitions compare equal. */
function prune(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((v) => prune(v));
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => [k, prune(v, k)] as const)
      .filter(([, v]) => v !== undefined);
    return entries.length ? Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1))) : undefined;
  }
  if (value === null || value === "" || (key === "reconcileInterval" && value === 0)) return undefined;
  return value;
}

/** What a definition says (its kind, names, schema, handler), in a form that compares with JSON text. */
export function definitionContent(definition: BlueprintDefinition): string {
  return JSON.stringify(
    prune({
      kind: definition.kind,
      name: definition.metadata.name,
      colonyname: definition.metadata.colonyname,
      spec: definition.spec,
    }) ?? {},
  );
}

/** The definition as the server returned it, without its id and empty metadata. */
function asRegistered(definition: BlueprintDefinition): BlueprintDefinition {
  return {
    kind: definition.kind,
    metadata: { name: definition.metadata.name, colonyname: definition.metadata.colonyname },
    spec: definition.spec,
  };
}

const describe = (d: BlueprintDefinition) =>
  `BlueprintDefinition ${d.metadata.name} (kind ${d.spec.names.kind}) of colony ${d.metadata.colonyname}`;

async function withClient<T>(server: ColoniesAddress, use: (client: ColoniesClient) => Promise<T>) {
  const client = new ColoniesClient(server);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

async function find(client: ColoniesClient, inputs: DefinitionInputs) {
  const { colonyname, name } = inputs.definition.metadata;
  return client.getBlueprintDefinition(colonyname, name, inputs.colonyPrvKey).catch((error: unknown) => {
    if (error instanceof ColoniesError && error.notFound) return undefined;
    throw error;
  });
}

/** Removes it; already gone is fine. The server refuses (409) while blueprints of its kind exist. */
async function remove(client: ColoniesClient, props: DefinitionInputs, why: string): Promise<void> {
  const { colonyname, name } = props.definition.metadata;
  try {
    await client.removeBlueprintDefinition(colonyname, name, props.colonyPrvKey);
  } catch (error) {
    if (error instanceof ColoniesError && error.notFound) return;
    if (error instanceof ColoniesError && error.status === 409) {
      throw new Error(
        `cannot ${why} ${describe(props.definition)}: ${error.serverMessage}; remove those blueprints first ` +
          `(colonies blueprint ls --kind ${props.definition.spec.names.kind}; colonies blueprint remove --name N)`,
      );
    }
    throw error;
  }
}

async function add(client: ColoniesClient, inputs: DefinitionInputs): Promise<DefinitionOutputs> {
  const added = await client.addBlueprintDefinition(inputs.definition, inputs.colonyPrvKey);
  return { ...inputs, definitionId: added.blueprintdefinitionid ?? "" };
}

const idOf = (d: BlueprintDefinition) => `${d.metadata.colonyname}/${d.metadata.name}`;
const sameAddress = (a: ColoniesAddress, b: ColoniesAddress) =>
  a.host === b.host && a.port === b.port && a.tls === b.tls;

/** The provider's work; the serialized shim calls these in the provider process. */
export const operations = {
  /**
   * A new name or colony is another definition (replaced, the old one removed first: two definitions of one kind
   * would make the server's choice of handler arbitrary); a changed content is an update; so is a new server
   * address or key, which changes nothing on the server but must be in the state for the next update or delete.
   */
  async diff(
    _id: string,
    olds: DefinitionOutputs,
    news: DefinitionInputs,
  ): Promise<pulumi.dynamic.DiffResult> {
    const replaces = (["name", "colonyname"] as const)
      .filter((key) => olds.definition.metadata[key] !== news.definition.metadata[key])
      .map(() => "definition");
    const changes =
      replaces.length > 0 ||
      definitionContent(olds.definition) !== definitionContent(news.definition) ||
      !sameAddress(olds.server, news.server) ||
      olds.colonyPrvKey !== news.colonyPrvKey;
    return { changes, replaces: [...new Set(replaces)], deleteBeforeReplace: true };
  },

  /** Adds it; an identical definition already there (e.g. registered by hand) is adopted, a different one refused. */
  async create(inputs: DefinitionInputs): Promise<pulumi.dynamic.CreateResult<DefinitionOutputs>> {
    return withClient(inputs.server, async (client) => {
      const existing = await find(client, inputs);
      if (existing && definitionContent(asRegistered(existing)) !== definitionContent(inputs.definition)) {
        throw new Error(
          `another ${describe(existing)} is registered, with a different schema or handler: remove it ` +
            `(colonies blueprint definition remove --name ${existing.metadata.name}) or set blueprintDefinitionName`,
        );
      }
      const outs = existing
        ? { ...inputs, definitionId: existing.blueprintdefinitionid ?? "" }
        : await add(client, inputs);
      return { id: idOf(inputs.definition), outs };
    });
  },

  /** What the server has now; a blank id when it is gone, so that refresh drops it and the next up adds it. */
  async read(id: string, props: DefinitionOutputs): Promise<pulumi.dynamic.ReadResult<DefinitionOutputs>> {
    return withClient(props.server, async (client) => {
      const current = await find(client, props);
      if (!current) return { id: "" };
      return {
        id,
        props: {
          ...props,
          definition: asRegistered(current),
          definitionId: current.blueprintdefinitionid ?? "",
        },
      };
    });
  },

  /**
   * Colonies 1.9.12 has no update of a definition: a changed one is removed and added again (the server refuses
   * the removal, 409, while blueprints of its kind exist). A new address or key only changes the state.
   */
  async update(
    _id: string,
    olds: DefinitionOutputs,
    news: DefinitionInputs,
  ): Promise<pulumi.dynamic.UpdateResult<DefinitionOutputs>> {
    if (definitionContent(olds.definition) === definitionContent(news.definition)) {
      return { outs: { ...news, definitionId: olds.definitionId } };
    }
    return withClient(news.server, async (client) => {
      await remove(client, { ...olds, server: news.server, colonyPrvKey: news.colonyPrvKey }, "update");
      return { outs: await add(client, news) };
    });
  },

  async delete(_id: string, props: DefinitionOutputs): Promise<void> {
    await withClient(props.server, (client) => remove(client, props, "remove"));
  },
};

type Operations = typeof operations;

/**
 * The serialized provider: self-contained (see the top of this file). Each method loads `operations` from this
 * module in the provider process.
 */
const provider: pulumi.dynamic.ResourceProvider = {
  async diff(id, olds, news) {
    return (await load()).diff(id, olds, news);
  },
  async create(inputs) {
    return (await load()).create(inputs);
  },
  async read(id, props) {
    return (await load()).read(id, props);
  },
  async update(id, olds, news) {
    return (await load()).update(id, olds, news);
  },
  async delete(id, props) {
    return (await load()).delete(id, props);
  },
};

async function load(): Promise<Operations> {
  const { tsImport } = await import("tsx/esm/api");
  const { existsSync } = await import("node:fs");
  const { dirname, join } = await import("node:path");
  const { pathToFileURL } = await import("node:url");
  // The provider runs in the program's directory (infra/, symlinks resolved) or the project root: look upwards.
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    const file = join(dir, "infra", "blueprint-definition.ts");
    if (existsSync(file)) {
      const url = pathToFileURL(file).href;
      const module = (await tsImport(url, url)) as { operations: Operations };
      return module.operations;
    }
    if (dirname(dir) === dir)
      throw new Error(`infra/blueprint-definition.ts not found above ${process.cwd()}`);
  }
}

export interface BlueprintDefinitionArgs {
  /** Where the machine running `pulumi up` reaches the Colonies server. */
  server: pulumi.Input<ColoniesAddress>;
  /** The colony owner key: kept a secret in the state. */
  colonyPrvKey: pulumi.Input<string>;
  /** The definition; `metadata.colonyname` names the colony. */
  definition: pulumi.Input<BlueprintDefinition>;
}

/** A BlueprintDefinition of a colony (type `pulumi-nodejs:dynamic/colonies:BlueprintDefinition`). */
export class ColoniesBlueprintDefinition extends pulumi.dynamic.Resource {
  declare readonly definition: pulumi.Output<BlueprintDefinition>;
  /** The id the server gave the definition. */
  declare readonly definitionId: pulumi.Output<string>;

  constructor(name: string, args: BlueprintDefinitionArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      provider,
      name,
      {
        server: args.server,
        colonyPrvKey: pulumi.secret(args.colonyPrvKey),
        definition: args.definition,
        definitionId: undefined,
      },
      { ...opts, additionalSecretOutputs: ["colonyPrvKey"] },
      "colonies",
      "BlueprintDefinition",
    );
  }
}

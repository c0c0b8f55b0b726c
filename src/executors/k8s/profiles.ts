/**
 * The operator's profiles (K8S_PROFILES): which Secrets a deployment may reference, and which environment names a
 * caller may set, bound to the images and cmds that may use them. A Secret is only as safe as the program that
 * reads it: the backup image with a database password and the caller's own S3 endpoint uploads the database to
 * the caller, so a Secret goes only to the images (and cmds) the operator bound it to, with only the env names
 * the operator allows next to it.
 *
 *   K8S_PROFILES='{"shop-backup": {"images": ["registry.example.com/colonyos/executors:*"], "cmds": ["backup"],
 *                  "secrets": ["shop-db"], "env": ["DB_HOST", "DB_PORT", "DB_DATABASE", "DB_USER"]}}'
 *
 * Every list holds glob patterns (picomatch's rules, as for K8S_ALLOWED_IMAGES). `cmds` absent: any cmd the
 * global K8S_ALLOWED_CMDS allows; `""` in it: the image's own command (no cmd).
 */
import { z } from "zod";

const patterns = z.array(z.string().trim().min(1)).max(256);

const profileSchema = z.strictObject({
  images: patterns.min(1),
  cmds: z.array(z.string().trim()).max(256).optional(),
  secrets: patterns.optional(),
  env: patterns.optional(),
});

const profilesSchema = z.record(
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "a profile name: letters, digits, . _ -"),
  profileSchema,
);

export type Profile = z.infer<typeof profileSchema>;
export type Profiles = Record<string, Profile>;

/** Parses K8S_PROFILES; returns the profiles or what is wrong with the text. */
export function parseProfiles(text: string): { profiles: Profiles } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { problem: `K8S_PROFILES must be a JSON object (${(error as Error).message})` };
  }
  const parsed = profilesSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? ` at ${first.path.join(".")}` : "";
    return {
      problem: `K8S_PROFILES${where}: ${first?.message ?? "invalid"} (expected {"<name>": {"images": [...], "cmds": [...], "secrets": [...], "env": [...]}})`,
    };
  }
  return { profiles: parsed.data };
}

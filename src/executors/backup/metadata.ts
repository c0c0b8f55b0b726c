/** The JSON document stored beside every backup (`<name>.json`), written before the backup becomes visible. */
import { z } from "zod";

export const METADATA_FORMAT = "colonyos-backup/1";

export const BackupMetadataSchema = z.object({
  format: z.literal(METADATA_FORMAT),
  name: z.string(),
  database: z.string(),
  host: z.string(),
  port: z.number().int(),
  user: z.string(),
  serverVersion: z.string(),
  pgDumpVersion: z.string(),
  compression: z.number().int().optional(),
  start: z.string(),
  end: z.string(),
  durationMs: z.number(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export type BackupMetadata = z.infer<typeof BackupMetadataSchema>;

export function encodeMetadata(meta: BackupMetadata): Buffer {
  return Buffer.from(`${JSON.stringify(meta, null, 2)}\n`);
}

/** Throws a readable error when the document is not ours or is damaged. */
export function decodeMetadata(text: string, name: string): BackupMetadata {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`metadata of backup ${name} is not valid JSON`);
  }
  const parsed = BackupMetadataSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(
      `metadata of backup ${name} is invalid (${first?.path.join(".") || "document"}: ${first?.message})`,
    );
  }
  if (parsed.data.name !== name) throw new Error(`metadata of backup ${name} describes ${parsed.data.name}`);
  return parsed.data;
}

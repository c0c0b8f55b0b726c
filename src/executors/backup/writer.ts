/**
 * Whose unfinished writes a backup may remove. A killed backup leaves a temporary file or an unfinished upload;
 * the next backup removes it, but only if no live backup can still be writing it. The backup lock (database.ts)
 * guarantees that for one database on one PostgreSQL server only, so every temporary write carries a tag of
 * that scope and a backup removes only leftovers with its own tag, never those of a same-named database on
 * another server sharing the directory or bucket.
 *
 * The tag hashes the server's system identifier (unique per cluster; any user may read it), the host and port
 * as configured (a standby shares its primary's identifier but not its lock) and the database name. Reaching
 * one server under two host names gives two tags: their leftovers wait for their own executor, which is safe.
 */
import { createHash } from "node:crypto";
import type { PgConfig } from "./config.js";
import type { Session } from "./database.js";

/** Hex characters of the tag: short in file names, long enough never to collide by chance. */
export const WRITER_TAG_LENGTH = 12;
export const WRITER_TAG = /^[0-9a-f]{12}$/;

export function writerTag(
  systemIdentifier: string,
  pg: Pick<PgConfig, "host" | "port" | "database">,
): string {
  return createHash("sha256")
    .update(JSON.stringify([systemIdentifier, pg.host, pg.port, pg.database]))
    .digest("hex")
    .slice(0, WRITER_TAG_LENGTH);
}

/**
 * The tag of this executor's backups of its database. When the server does not tell its identifier (a proxy,
 * a revoked function), host, port and database alone make the tag.
 */
export async function ownWriterTag(session: Session, pg: PgConfig): Promise<string> {
  const id = await session.client
    .query<{ id: string }>("SELECT system_identifier::text AS id FROM pg_control_system()")
    .then(
      (res) => res.rows[0]?.id ?? "",
      () => "",
    );
  return writerTag(id, pg);
}

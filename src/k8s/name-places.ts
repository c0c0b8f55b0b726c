/**
 * Which places in a name's order are still held, as far as Colonies can tell: a ticket of a replica proven gone
 * (or abandoned) keeps its place while its process is open, for the re-run; and a call open in Colonies without a
 * ticket at all (assigned to a replica that died before putting it down) holds a place too. Colonies' answers are
 * reused for a moment, so that many waiting operations do not ask it over and over.
 */
import type { Logger } from "pino";
import { type StoredTicket, standsIn } from "./name-lease.js";

/** How long an answer of processOpen is reused. */
const PROCESS_STATE_MS = 2_000;

export interface NamePlacesOptions {
  /**
   * Whether a Colonies process may still run (WAITING or RUNNING). Without it, the places of gone replicas are
   * given up at once.
   */
  processOpen?: (processId: string) => Promise<boolean>;
  /** An open Colonies process that mutates `name`, comes before `order`, and has none of the `tracked` tickets. */
  untrackedEarlier?: (
    name: string,
    order: number,
    tracked: ReadonlySet<string>,
  ) => Promise<string | undefined>;
  logger: Logger;
}

export class NamePlaces {
  private readonly processStates = new Map<string, { open: boolean; at: number }>();
  private readonly untracked = new Map<string, { found: boolean; at: number }>();

  constructor(private readonly options: NamePlacesOptions) {}

  /**
   * The tickets that keep their place: those of live replicas, and those of replicas proven gone whose process
   * Colonies may still run again, until a live ticket of the same process takes the place. Not even a later
   * operation that supersedes it may go first: the later one could fail for want of it (an undeploy of a name
   * whose first deploy was cut off), and the re-run would then apply out of order.
   */
  async kept(tickets: StoredTicket[], gone: ReadonlySet<string>): Promise<StoredTicket[]> {
    const live = new Set(tickets.filter((t) => !standsIn(t, gone)).map((t) => t.process));
    const kept: StoredTicket[] = [];
    for (const ticket of tickets) {
      if (!standsIn(ticket, gone)) kept.push(ticket);
      else if (!live.has(ticket.process) && (await this.processOpen(ticket.process))) kept.push(ticket);
    }
    return kept;
  }

  /** Whether an earlier call on the name is open in Colonies without a ticket (answers reused for a second). */
  async untrackedEarlier(name: string, order: number, tickets: StoredTicket[]): Promise<boolean> {
    const { untrackedEarlier } = this.options;
    if (!untrackedEarlier) return false;
    const key = `${name}/${order}`;
    const known = this.untracked.get(key);
    if (known && Date.now() - known.at < PROCESS_STATE_MS / 2) return known.found;
    const process = await untrackedEarlier(name, order, new Set(tickets.map((t) => t.process)));
    if (process && !known?.found) {
      this.options.logger.info(
        { deployment: name, waitingFor: process },
        "an earlier call on the name is open in Colonies without a ticket; waiting for it",
      );
    }
    this.untracked.set(key, { found: process !== undefined, at: Date.now() });
    if (this.untracked.size > 1000) this.untracked.clear();
    return process !== undefined;
  }

  private async processOpen(processId: string): Promise<boolean> {
    const { processOpen } = this.options;
    if (!processOpen || !processId) return false;
    const known = this.processStates.get(processId);
    if (known && Date.now() - known.at < PROCESS_STATE_MS) return known.open;
    const open = await processOpen(processId);
    this.processStates.set(processId, { open, at: Date.now() });
    if (this.processStates.size > 1000) this.processStates.clear();
    return open;
  }
}

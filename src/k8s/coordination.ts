/**
 * Per-name turns shared by every k8s-executor replica: at most one replica works on a deployment name at a time,
 * and each name carries a record of what was last applied to it, so that
 * - an operation older than the applied one is superseded instead of rolling the state back;
 * - a replica knows whether its cached outputs are still the stack's (the version changes with every update);
 * - a turn taken from a holder proven gone says so, and the interrupted update is cleaned up first.
 * Two implementations: {@link LocalCoordinator} for a single writer (one process owns the state backend), and
 * `LeaseCoordinator` (Kubernetes Leases) for replicas sharing a backend.
 */

/** The mutating operation last applied to a name. */
export interface AppliedOperation {
  /** Colonies process id. */
  process: string;
  fn: string;
  /** Colonies' priority time: the operation's place in submission order. */
  order: number;
  /** When it was applied (ISO time). */
  at: string;
}

export interface NameRecord {
  /** Changes with every update attempt on the name's stack, whoever made it. */
  version: number;
  applied?: AppliedOperation;
}

export interface NameTurn {
  readonly record: NameRecord;
  /** The previous holder was proven gone without ending its turn: its update may have been cut off. */
  readonly takenOver: boolean;
  /** Aborts when the turn is lost (it could not be renewed in time), so that the work stops. */
  readonly lost: AbortSignal;
  /** Ends the turn; `next` replaces the record when the stack was changed. */
  release(next?: NameRecord): Promise<void>;
}

export interface NameCoordinator {
  /** What coordinates the turns, for logs ("local", "lease"). */
  readonly kind: string;
  /** Waits for the name's turn; rejects when `signal` aborts first. */
  acquire(name: string, signal: AbortSignal): Promise<NameTurn>;
  close(): Promise<void>;
}

/**
 * One process owns the state backend (a file backend on a ReadWriteOnce volume): its own per-name queue already
 * serialises the turns, so the records live in memory.
 */
export class LocalCoordinator implements NameCoordinator {
  readonly kind = "local";
  private readonly records = new Map<string, NameRecord>();
  private readonly never = new AbortController().signal;

  async acquire(name: string): Promise<NameTurn> {
    const record = this.records.get(name) ?? { version: 0 };
    return {
      record,
      takenOver: false,
      lost: this.never,
      release: async (next) => {
        if (next) this.records.set(name, next);
      },
    };
  }

  async close(): Promise<void> {}
}

/**
 * Runs operations one at a time per key and at most `limit` keys at once: each Pulumi stack takes one update at
 * a time, while different stacks proceed concurrently up to a memory-bounded limit.
 *
 * Waiting operations of a key run in `order` (the Colonies server's submission order), not in the order their
 * processes happened to reach this executor: several slots assign processes at the same moment, and their
 * handlers race. An idle key waits `gatherMs` before starting so that such a burst is sorted.
 *
 * Deferring: an operation may carry a tag; one that `defers(earlier, later)` to a later waiting one lets that one
 * (and whatever else comes first) run before it, and runs once no such later one waits any more. Nothing is
 * dropped here: what the earlier one then does (e.g. find itself superseded) is its operation's business.
 */
interface Waiting<Tag> {
  order: number;
  seq: number;
  tag?: Tag;
  start: () => void;
}

interface KeyState<Tag> {
  running: boolean;
  scheduled: boolean;
  waiting: Waiting<Tag>[];
}

export interface KeyedQueueOptions<Tag> {
  /** Operations on different keys at once (unbounded when absent). */
  limit?: number;
  /** How long an idle key waits for simultaneous arrivals. */
  gatherMs?: number;
  /** Whether a waiting operation lets a later waiting one go first, and waits until it has gone. */
  defers?: (earlier: Tag, later: Tag) => boolean;
}

export class KeyedQueue<Tag = never> {
  private readonly keys = new Map<string, KeyState<Tag>>();
  private seq = 0;
  private readonly slots: Slots;
  private readonly gatherMs: number;

  constructor(private readonly options: KeyedQueueOptions<Tag>) {
    this.slots = new Slots(options.limit ?? Number.POSITIVE_INFINITY);
    this.gatherMs = options.gatherMs ?? 0;
  }

  run<T>(key: string, operation: () => Promise<T>, order = Number.POSITIVE_INFINITY, tag?: Tag): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const state = this.keys.get(key) ?? { running: false, scheduled: false, waiting: [] };
      this.keys.set(key, state);
      const entry: Waiting<Tag> = {
        order,
        seq: this.seq++,
        tag,
        start: () => {
          this.slots
            .run(operation)
            .then(resolve, reject)
            .finally(() => {
              state.running = false;
              this.next(key, state);
            });
        },
      };
      state.waiting.push(entry);
      state.waiting.sort((a, b) => a.order - b.order || a.seq - b.seq);
      if (!state.running && !state.scheduled) {
        state.scheduled = true;
        setTimeout(() => {
          state.scheduled = false;
          this.next(key, state);
        }, this.gatherMs);
      }
    });
  }

  /** Keys with an operation running or queued. */
  get busyKeys(): string[] {
    return [...this.keys.keys()];
  }

  private next(key: string, state: KeyState<Tag>): void {
    if (state.running) return;
    const index = this.firstReady(state.waiting);
    const entry = state.waiting.splice(index, 1)[0];
    if (!entry) {
      if (!state.scheduled) this.keys.delete(key);
      return;
    }
    state.running = true;
    entry.start();
  }

  /** The first waiting operation (the list is in order) that defers to no later waiting one. */
  private firstReady(waiting: Waiting<Tag>[]): number {
    const { defers } = this.options;
    if (!defers) return 0;
    const index = waiting.findIndex(
      (entry, i) =>
        entry.tag === undefined ||
        !waiting.slice(i + 1).some((later) => later.tag !== undefined && defers(entry.tag as Tag, later.tag)),
    );
    // The last one defers to nothing: only an inconsistent `defers` finds none.
    return Math.max(index, 0);
  }
}

/** At most `limit` operations at once; the others wait in arrival order. */
export class Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await operation();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

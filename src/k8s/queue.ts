/**
 * Runs operations one at a time per key and at most `limit` keys at once: each Pulumi stack takes one update at
 * a time, while different stacks proceed concurrently up to a memory-bounded limit.
 *
 * Waiting operations of a key run in `order` (Colonies' priority time: submission order, adjusted by priority),
 * not in the order their processes happened to reach this executor: several slots assign processes at the same
 * moment, and their handlers race. An idle key waits `gatherMs` before starting so that such a burst is sorted.
 *
 * Coalescing: an operation may carry a tag; before a key's next operation starts, each waiting one that a later
 * waiting one supersedes (`supersede(earlier, later)` returns the error to reject it with) is dropped unrun.
 */
interface Waiting<Tag> {
  order: number;
  seq: number;
  tag?: Tag;
  start: () => void;
  drop: (error: Error) => void;
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
  /** The error to drop a waiting operation with when a later waiting one makes it pointless. */
  supersede?: (earlier: Tag, later: Tag) => Error | undefined;
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

  run<T>(key: string, operation: () => Promise<T>, order = Number.MAX_SAFE_INTEGER, tag?: Tag): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const state = this.keys.get(key) ?? { running: false, scheduled: false, waiting: [] };
      this.keys.set(key, state);
      const entry: Waiting<Tag> = {
        order,
        seq: this.seq++,
        tag,
        drop: reject,
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
    this.coalesce(state);
    const entry = state.waiting.shift();
    if (!entry) {
      if (!state.scheduled) this.keys.delete(key);
      return;
    }
    state.running = true;
    entry.start();
  }

  /** Drops the waiting operations that a later waiting one supersedes (the list is in order). */
  private coalesce(state: KeyState<Tag>): void {
    const { supersede } = this.options;
    if (!supersede) return;
    state.waiting = state.waiting.filter((entry, i) => {
      if (entry.tag === undefined) return true;
      // The latest superseder is the one to name: the ones between are dropped too.
      for (const later of state.waiting.slice(i + 1).reverse()) {
        const error = later.tag === undefined ? undefined : supersede(entry.tag, later.tag);
        if (error) {
          entry.drop(error);
          return false;
        }
      }
      return true;
    });
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

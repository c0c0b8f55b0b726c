/**
 * Runs operations one at a time per key and at most `limit` keys at once: each Pulumi stack takes one update at
 * a time, while different stacks proceed concurrently up to a memory-bounded limit.
 *
 * Waiting operations of a key run in `order` (Colonies' priority time: submission order, adjusted by priority),
 * not in the order their processes happened to reach this executor: several slots assign processes at the same
 * moment, and their handlers race. An idle key waits `gatherMs` before starting so that such a burst is sorted.
 */
interface Waiting {
  order: number;
  seq: number;
  start: () => void;
}

interface KeyState {
  running: boolean;
  scheduled: boolean;
  waiting: Waiting[];
}

export class KeyedQueue {
  private readonly keys = new Map<string, KeyState>();
  private active = 0;
  private readonly slots: (() => void)[] = [];
  private seq = 0;

  constructor(
    private readonly limit: number,
    private readonly gatherMs = 0,
  ) {}

  run<T>(key: string, operation: () => Promise<T>, order = Number.MAX_SAFE_INTEGER): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const state = this.keys.get(key) ?? { running: false, scheduled: false, waiting: [] };
      this.keys.set(key, state);
      const entry: Waiting = {
        order,
        seq: this.seq++,
        start: () => {
          this.withSlot(operation)
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

  private next(key: string, state: KeyState): void {
    if (state.running) return;
    const entry = state.waiting.shift();
    if (!entry) {
      if (!state.scheduled) this.keys.delete(key);
      return;
    }
    state.running = true;
    entry.start();
  }

  private async withSlot<T>(operation: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.slots.push(resolve));
    this.active++;
    try {
      return await operation();
    } finally {
      this.active--;
      this.slots.shift()?.();
    }
  }
}

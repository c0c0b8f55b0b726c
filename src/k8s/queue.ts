/**
 * Runs operations one at a time per key, in arrival order, and at most `limit` keys at once: each Pulumi stack
 * takes one update at a time, while different stacks proceed concurrently up to a memory-bounded limit.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  run<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.catch(() => undefined).then(() => this.withSlot(operation));
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with an operation running or queued. */
  get busyKeys(): string[] {
    return [...this.tails.keys()];
  }

  private async withSlot<T>(operation: () => Promise<T>): Promise<T> {
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

/**
 * Forwards many short lines (Pulumi's progress output) to the Colonies process log in batches: one addlogmsg per
 * second at most, instead of one per line.
 */
export class LogBatcher {
  private lines: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly send: (message: string) => Promise<void>,
    private readonly intervalMs = 1000,
  ) {}

  add = (line: string): void => {
    this.lines.push(line);
    this.timer ??= setTimeout(() => this.flushNow(), this.intervalMs);
  };

  private flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.lines.length === 0) return;
    const message = this.lines.join("\n");
    this.lines = [];
    this.sending = this.sending.then(() => this.send(message));
  }

  /** Sends what is left and waits until everything was sent. */
  async close(): Promise<void> {
    this.flushNow();
    await this.sending;
  }
}

/**
 * A wait for "something changed" among a sink's pieces in flight (a cluster or a member compressed,
 * a write done, an abort): every waiter wakes at the next change and checks its own condition again.
 */
export class ChangeSignal {
  private waiters: (() => void)[] = [];

  /** Resolves at the next wakeAll(). */
  next(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

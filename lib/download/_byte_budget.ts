/**
 * A count of chunk bytes requested but not yet written, which makes
 * requesters wait for room: a download's memory bound.
 *
 * @module
 */

/** Counts bytes in flight and makes requesters wait for room. */
export class ByteBudget {
  #used = 0;
  #waiters: (() => void)[] = [];

  /**
   * Creates a budget.
   *
   * @param max Most bytes in flight (one request may always proceed).
   */
  constructor(readonly max: number) {}

  /**
   * Waits until `bytes` fit, then takes them.
   *
   * @param bytes Bytes about to be requested.
   */
  async acquire(bytes: number): Promise<void> {
    while (this.#used > 0 && this.#used + bytes > this.max) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    this.#used += bytes;
  }

  /**
   * Gives `bytes` back and wakes the waiters.
   *
   * @param bytes Bytes taken by {@linkcode ByteBudget.acquire}.
   */
  release(bytes: number): void {
    this.#used -= bytes;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

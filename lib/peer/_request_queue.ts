/**
 * Private per-connection request queue of the chunk server: requests are read
 * eagerly into a bounded queue and served one at a time in order, so a
 * `cancel` can drop a request that is still waiting.
 *
 * @module
 */
import { ProtocolError } from "../net/wire.ts";

/** Most requests one connection may have queued at a peer. */
export const MAX_QUEUED_REQUESTS = 256;

/** A bounded FIFO of requests with one worker serving them in order. */
export class RequestQueue<T extends { rid: unknown }> {
  readonly #items: T[] = [];
  readonly #max: number;
  #wake: (() => void) | undefined;
  #ended = false;

  constructor(max: number = MAX_QUEUED_REQUESTS) {
    this.#max = max;
  }

  /**
   * Queues a request.
   *
   * @throws {ProtocolError} When the queue is full.
   */
  push(item: T): void {
    if (this.#items.length >= this.#max) {
      throw new ProtocolError(
        `Cannot accept request: more than ${this.#max} queued on one connection`,
      );
    }
    this.#items.push(item);
    this.#wakeWorker();
  }

  /** Drops the waiting request with this rid, if any. */
  cancel(rid: unknown): void {
    const i = this.#items.findIndex((q) => q.rid === rid);
    if (i >= 0) this.#items.splice(i, 1);
  }

  /** Drops what is waiting and lets the worker finish. */
  end(): void {
    this.#ended = true;
    this.#items.length = 0;
    this.#wakeWorker();
  }

  /** Serves requests in order until {@linkcode RequestQueue.end}. */
  async run(serve: (item: T) => Promise<void>): Promise<void> {
    while (true) {
      const next = this.#items.shift();
      if (next) {
        await serve(next);
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  #wakeWorker(): void {
    this.#wake?.();
    this.#wake = undefined;
  }
}

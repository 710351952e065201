/**
 * A token bucket shared by every connection of a peer, to cap upload or
 * download bandwidth. Waiters are served first come, first served, so
 * connections share the rate fairly at chunk granularity.
 *
 * @module
 */

/**
 * Caps a byte rate. `take(n)` resolves when `n` bytes may be sent. A request
 * larger than the burst goes into debt and later requests wait it off, so the
 * long-run average never exceeds the rate.
 *
 * @example Limiting to 1 MiB/s
 * ```ts
 * import { TokenBucket } from "@shoal/shoal/net";
 * const bucket = new TokenBucket(1024 * 1024);
 * await bucket.take(1024); // within the initial burst: immediate
 * ```
 */
export class TokenBucket {
  /** Bytes per second. */
  readonly rate: number;
  /** Largest burst, bytes. */
  readonly burst: number;
  #tokens: number;
  #last = performance.now();
  #queue: { bytes: number; resolve: () => void }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Creates a bucket, initially full.
   *
   * @param rate Bytes per second (> 0).
   * @param burst Largest burst in bytes. Defaults to a tenth of a second's
   *   worth, at least 64 KiB.
   */
  constructor(rate: number, burst?: number) {
    if (!(rate > 0) || !Number.isFinite(rate)) {
      throw new RangeError(
        `Cannot limit rate: ${rate} is not a positive number of bytes/s`,
      );
    }
    this.rate = rate;
    this.burst = burst ?? Math.max(64 * 1024, rate / 10);
    this.#tokens = this.burst;
  }

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(
      this.burst,
      this.#tokens + ((now - this.#last) / 1000) * this.rate,
    );
    this.#last = now;
  }

  /**
   * Waits until `bytes` may pass.
   *
   * @param bytes Bytes about to be sent or requested.
   * @param signal Gives up waiting when aborted.
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#queue.indexOf(entry);
        if (i < 0) return;
        this.#queue.splice(i, 1);
        if (this.#queue.length === 0 && this.#timer !== undefined) {
          clearTimeout(this.#timer);
          this.#timer = undefined;
        }
        reject(signal!.reason);
      };
      const entry = {
        bytes,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      this.#queue.push(entry);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#drain();
    });
  }

  #drain(): void {
    if (this.#timer !== undefined) return;
    this.#refill();
    while (this.#queue.length > 0 && this.#tokens >= 0) {
      const entry = this.#queue.shift()!;
      this.#tokens -= entry.bytes;
      entry.resolve();
    }
    if (this.#queue.length > 0) {
      const waitMs = Math.max(1, (-this.#tokens / this.rate) * 1000);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#drain();
      }, waitMs);
    }
  }
}

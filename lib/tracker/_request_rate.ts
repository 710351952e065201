/**
 * Private per-address request rate limiter for the tracker: one token bucket
 * per remote IP, with a bounded table so a spray of addresses cannot grow it.
 *
 * @module
 */

/** Limits for {@linkcode RateLimiter}. */
export interface RateLimit {
  /** Sustained requests per second per address (0 disables the limit). */
  requestsPerSecond: number;
  /** Requests an address may make in a burst above the sustained rate. */
  burst: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

/** Most addresses tracked at once; the stalest are forgotten beyond it. */
const MAX_BUCKETS = 65_536;

/** Token buckets keyed by remote address. */
export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  /**
   * Creates a limiter.
   *
   * @param limit Rate and burst; a rate of 0 admits everything.
   * @param now Clock in ms (tests pass a fake one).
   */
  constructor(limit: RateLimit, now: () => number = () => performance.now()) {
    if (!(limit.requestsPerSecond >= 0) || !(limit.burst >= 1)) {
      throw new RangeError(
        `Cannot create rate limiter: rate ${limit.requestsPerSecond}/s and burst ${limit.burst} must be >= 0 and >= 1`,
      );
    }
    this.#rate = limit.requestsPerSecond;
    this.#burst = limit.burst;
    this.#now = now;
  }

  /** Whether the limiter admits everything. */
  get disabled(): boolean {
    return this.#rate === 0;
  }

  /**
   * Takes one request's token for `address`.
   *
   * @param address The remote IP.
   * @returns `true` if the request may proceed.
   */
  take(address: string): boolean {
    if (this.#rate === 0) return true;
    const now = this.#now();
    let bucket = this.#buckets.get(address);
    if (bucket) {
      bucket.tokens = Math.min(
        this.#burst,
        bucket.tokens + (now - bucket.updated) * this.#rate / 1000,
      );
      bucket.updated = now;
      // Re-insert: the map's order is then least recently used first.
      this.#buckets.delete(address);
    } else {
      bucket = { tokens: this.#burst, updated: now };
      if (this.#buckets.size >= MAX_BUCKETS) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
    }
    this.#buckets.set(address, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /**
   * Charges `address` for work a request turned out to cost beyond its
   * token: the bucket may go into debt (down to minus the burst), and later
   * requests wait until it refills.
   *
   * @param address The remote IP.
   * @param tokens Extra tokens the request cost.
   */
  charge(address: string, tokens: number): void {
    if (this.#rate === 0 || !(tokens > 0)) return;
    const bucket = this.#buckets.get(address);
    if (bucket) {
      bucket.tokens = Math.max(-this.#burst, bucket.tokens - tokens);
    }
  }

  /** Forgets addresses whose buckets have refilled (housekeeping). */
  sweep(): void {
    const now = this.#now();
    for (const [address, bucket] of this.#buckets) {
      if (
        bucket.tokens + (now - bucket.updated) * this.#rate / 1000 >=
          this.#burst
      ) {
        this.#buckets.delete(address);
      }
    }
  }
}

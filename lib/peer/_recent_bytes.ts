/**
 * Private sliding count of bytes per key over a recent window (two buckets,
 * the older one fading out linearly): what this peer received from each
 * source lately, for the reciprocity of upload slots.
 *
 * @module
 */

/** A time source in milliseconds. */
export interface Clock {
  /** The current time, ms. */
  now(): number;
}

/** The default clock: `performance.now()`. */
export const monotonicClock: Clock = { now: () => performance.now() };

/** Most keys counted at once; the least recently added are forgotten. */
const MAX_KEYS = 4096;

interface Buckets {
  start: number;
  current: number;
  previous: number;
}

/** Bytes per key over about the last `windowMs`. */
export class RecentBytes {
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #keys = new Map<string, Buckets>();

  /**
   * Creates a counter.
   *
   * @param windowMs The window, ms.
   * @param clock The time source.
   */
  constructor(windowMs = 10_000, clock: Clock = monotonicClock) {
    this.#windowMs = windowMs;
    this.#clock = clock;
  }

  /** Counts `bytes` for `key` now. */
  add(key: string, bytes: number): void {
    const now = this.#clock.now();
    let b = this.#keys.get(key);
    if (b) this.#keys.delete(key); // re-inserted last: most recent
    else b = { start: now, current: 0, previous: 0 };
    this.#roll(b, now);
    b.current += bytes;
    this.#keys.set(key, b);
    if (this.#keys.size > MAX_KEYS) {
      this.#keys.delete(this.#keys.keys().next().value!);
    }
  }

  /** Bytes counted for `key` over about the last window. */
  bytes(key: string): number {
    const b = this.#keys.get(key);
    if (!b) return 0;
    const now = this.#clock.now();
    this.#roll(b, now);
    const fade = 1 - (now - b.start) / this.#windowMs;
    return b.current + b.previous * Math.max(0, fade);
  }

  #roll(b: Buckets, now: number): void {
    const elapsed = now - b.start;
    if (elapsed < this.#windowMs) return;
    b.previous = elapsed < 2 * this.#windowMs ? b.current : 0;
    b.current = 0;
    b.start = now - (elapsed % this.#windowMs);
  }
}

/**
 * A `host:port` in one spelling: lower case, IPv6 without brackets, so an
 * address from a tracker and one seen on a socket compare equal.
 *
 * @param host Host name or IP (IPv6 with or without brackets).
 * @param port Port.
 * @returns The key.
 */
export function addressKey(host: string, port: number | string): string {
  return `${host.replace(/^\[|\]$/g, "").toLowerCase()}|${port}`;
}

/**
 * {@linkcode addressKey} of a `host:port` string.
 *
 * @param address `host:port` or `[v6]:port`.
 * @returns The key, or the address itself when it has no port.
 */
export function keyOfAddress(address: string): string {
  const i = address.lastIndexOf(":");
  if (i < 0) return address;
  return addressKey(address.slice(0, i), address.slice(i + 1));
}

/**
 * Private chunk memory: fixed reusable slots for a download, and a bounded
 * shared pool for uploads, so memory follows the chunks in flight, never the
 * number of connections, and no page is zeroed twice.
 *
 * @module
 */

/** Reusable chunk buffers carved from one allocation. */
export class ChunkBuffers {
  readonly #slotSize: number;
  readonly #slab: ArrayBuffer;
  readonly #free: number[] = [];

  /**
   * Carves the slots from one allocation.
   *
   * @param slotSize Bytes per slot (the chunk size).
   * @param slots Number of slots (chunks in flight, plus a margin).
   */
  constructor(slotSize: number, slots: number) {
    this.#slotSize = slotSize;
    this.#slab = new ArrayBuffer(slotSize * slots);
    for (let i = slots - 1; i >= 0; i--) this.#free.push(i);
  }

  /**
   * A buffer for an incoming chunk of `size` bytes: a free slot, or fresh
   * memory when none is free (a late reply) or the size is unexpected.
   */
  allocate = (size: number): Uint8Array => {
    const slot = size <= this.#slotSize ? this.#free.pop() : undefined;
    if (slot === undefined) return new Uint8Array(size);
    return new Uint8Array(this.#slab, slot * this.#slotSize, size);
  };

  /** Gives a buffer from {@linkcode ChunkBuffers.allocate} back. */
  release = (bytes: Uint8Array): void => {
    if (bytes.buffer !== this.#slab) return;
    this.#free.push(bytes.byteOffset / this.#slotSize);
  };
}

/** Options for {@linkcode UploadBuffers}. */
export interface UploadBuffersOptions {
  /**
   * Most bytes lent out at once; a request past it waits for a release (one
   * buffer is always lent, however large, so serving never deadlocks).
   *
   * @default {67108864}
   */
  maxBytes?: number;
  /** Free buffers kept for reuse instead of being allocated again. @default {4} */
  keep?: number;
}

interface Waiter {
  size: number;
  resolve: () => void;
}

/**
 * The buffers a peer serves chunks from, shared by all its connections: a
 * connection borrows one per chunk and gives it back once the chunk is
 * written, so an idle connection holds none and memory is bounded by
 * `maxBytes` plus `keep` free buffers. Borrowers past the bound wait in
 * order.
 */
export class UploadBuffers {
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #free: Uint8Array[] = [];
  readonly #waiters: Waiter[] = [];
  #lentBytes = 0;
  #lent = 0;

  /**
   * Makes an empty pool; buffers are allocated as first needed.
   *
   * @param options Bound and reuse.
   */
  constructor(options: UploadBuffersOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.#keep = options.keep ?? 4;
  }

  /** Buffers lent out now. */
  get lent(): number {
    return this.#lent;
  }

  /** Bytes lent out now. */
  get lentBytes(): number {
    return this.#lentBytes;
  }

  /** Bytes held in free buffers kept for reuse. */
  get keptBytes(): number {
    return this.#free.reduce((sum, b) => sum + b.byteLength, 0);
  }

  /**
   * Borrows a buffer of exactly `size` bytes (old contents, not zeroed),
   * waiting while `maxBytes` are lent out.
   *
   * @param size Bytes needed.
   * @param signal Stops waiting (rejects with its reason).
   * @returns The buffer; give it back with {@linkcode UploadBuffers.release}.
   */
  async acquire(size: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    if (this.#waiters.length > 0 || !this.#fits(size)) {
      await new Promise<void>((resolve, reject) => {
        const waiter: Waiter = { size, resolve: () => done(resolve) };
        const onAbort = () => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          done(() => reject(signal!.reason));
          this.#wake(); // The next one in line may fit now.
        };
        const done = (settle: () => void) => {
          signal?.removeEventListener("abort", onAbort);
          settle();
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        this.#waiters.push(waiter);
      });
    } else {
      this.#reserve(size);
    }
    return this.#take(size);
  }

  /**
   * Gives back a buffer from {@linkcode UploadBuffers.acquire}, once nothing
   * reads or writes it any more.
   *
   * @param bytes The buffer, as returned.
   */
  release(bytes: Uint8Array): void {
    this.#lentBytes -= bytes.length;
    this.#lent--;
    const whole = new Uint8Array(bytes.buffer);
    if (this.#free.length < this.#keep) {
      this.#free.push(whole);
    } else {
      // Keep the larger ones: a full chunk fits in them.
      const smallest = this.#smallestFree();
      if (this.#free[smallest]!.byteLength < whole.byteLength) {
        this.#free[smallest] = whole;
      }
    }
    this.#wake();
  }

  #fits(size: number): boolean {
    return this.#lent === 0 || this.#lentBytes + size <= this.#maxBytes;
  }

  #reserve(size: number): void {
    this.#lentBytes += size;
    this.#lent++;
  }

  /** Lets waiters in, in order, while they fit. */
  #wake(): void {
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0]!.size)) {
      const waiter = this.#waiters.shift()!;
      this.#reserve(waiter.size);
      waiter.resolve();
    }
  }

  /** The smallest free buffer of at least `size` bytes, or a new one. */
  #take(size: number): Uint8Array {
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const length = this.#free[i]!.byteLength;
      if (
        length >= size &&
        (best < 0 || length < this.#free[best]!.byteLength)
      ) best = i;
    }
    if (best < 0) return new Uint8Array(size);
    const [whole] = this.#free.splice(best, 1);
    return whole!.subarray(0, size);
  }

  #smallestFree(): number {
    let smallest = 0;
    for (let i = 1; i < this.#free.length; i++) {
      if (this.#free[i]!.byteLength < this.#free[smallest]!.byteLength) {
        smallest = i;
      }
    }
    return smallest;
  }
}

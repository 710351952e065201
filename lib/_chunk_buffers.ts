/**
 * Private chunk memory for a download: a fixed set of reusable chunk slots,
 * so memory stays bounded by the chunks in flight and no page is zeroed twice.
 *
 * @module
 */

/** Reusable chunk buffers carved from one allocation. */
export class ChunkBuffers {
  readonly #slotSize: number;
  readonly #slab: ArrayBuffer;
  readonly #free: number[] = [];

  /**
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

/**
 * Private SHA-256 service for downloads: large files are hashed on a worker
 * thread so verification overlaps with network and disk I/O; small ones on
 * the calling thread, where a worker's start-up would cost more than it saves.
 *
 * @module
 */
import { sha256Hex } from "./manifest.ts";

interface Pending {
  resolve(result: { hex: string; bytes: Uint8Array }): void;
  reject(error: Error): void;
  offset: number;
  length: number;
}

/** Hashes chunk buffers, on a worker when asked to. */
export class Hasher {
  #worker: Worker | undefined;
  #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor(useWorker: boolean) {
    if (!useWorker) return;
    this.#worker = new Worker(new URL("./_hash_worker.ts", import.meta.url), {
      type: "module",
    });
    this.#worker.onmessage = (
      event: MessageEvent<{ id: number; buffer: ArrayBuffer; hex: string }>,
    ) => {
      const { id, buffer, hex } = event.data;
      const pending = this.#pending.get(id);
      if (!pending) return;
      this.#pending.delete(id);
      pending.resolve({
        hex,
        bytes: new Uint8Array(buffer, pending.offset, pending.length),
      });
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#failAll(new Error(`Cannot hash: worker failed: ${event.message}`));
    };
  }

  /**
   * Hashes `bytes`. With a worker, the buffer is transferred away and comes
   * back as the returned `bytes` (use that, not the argument, afterwards).
   */
  hash(bytes: Uint8Array): Promise<{ hex: string; bytes: Uint8Array }> {
    const worker = this.#worker;
    if (!worker || bytes.buffer instanceof SharedArrayBuffer) {
      return Promise.resolve({ hex: sha256Hex(bytes), bytes });
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, {
        resolve,
        reject,
        offset: bytes.byteOffset,
        length: bytes.length,
      });
      const buffer = bytes.buffer as ArrayBuffer;
      worker.postMessage(
        { id, buffer, offset: bytes.byteOffset, length: bytes.length },
        [buffer],
      );
    });
  }

  #failAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }

  /** Stops the worker; pending hashes fail. */
  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#failAll(new Error("Cannot hash: the hasher was closed"));
  }
}

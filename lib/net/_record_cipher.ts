/**
 * Private: the transport records of a secure connection, sealed and opened
 * in bulk. A run of records is ChaCha20-Poly1305 with consecutive Noise
 * nonces; large runs of received records are opened by a small pool of
 * workers, so a download decrypts on another core while the main thread
 * hashes and writes.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";

/** Plaintext bytes per record: a Noise message is at most 65535 bytes. */
export const RECORD_PLAIN = 65535 - 16;
/** Received runs at least this large go to a worker (when one can run). */
export const WORKER_MIN_BYTES = 128 * 1024;

/**
 * Seals `plaintext` as records `[u16 length][ciphertext][tag]` with nonces
 * `nonce`, `nonce + 1`, ….
 */
export function sealRecords(
  key: Uint8Array,
  nonce: number,
  plaintext: Uint8Array,
): Uint8Array {
  const per = 65535 - 16;
  const records = Math.ceil(plaintext.length / per);
  const out = new Uint8Array(plaintext.length + records * 18);
  const iv = new Uint8Array(12);
  const view = new DataView(iv.buffer);
  let o = 0;
  for (let i = 0; i < records; i++) {
    const part = plaintext.subarray(
      i * per,
      Math.min((i + 1) * per, plaintext.length),
    );
    const n = nonce + i;
    view.setUint32(4, n % 0x100000000, true);
    view.setUint32(8, Math.floor(n / 0x100000000), true);
    const cipher = createCipheriv("chacha20-poly1305", key, iv, {
      authTagLength: 16,
    });
    const body = cipher.update(part);
    cipher.final();
    const length = part.length + 16;
    out[o] = length >> 8;
    out[o + 1] = length & 0xff;
    out.set(body, o + 2);
    out.set(cipher.getAuthTag(), o + 2 + part.length);
    o += 2 + length;
  }
  return out;
}

/**
 * Opens whole records (as {@linkcode sealRecords} makes them) with nonces
 * from `nonce` on, returning their plaintexts joined. Self-contained (it
 * also runs in the workers): it uses nothing but `createDecipheriv` and
 * literals.
 *
 * @throws {Error} `record N failed authentication` at the first bad record.
 */
export function openRecords(
  key: Uint8Array,
  nonce: number,
  records: Uint8Array,
): Uint8Array {
  let total = 0;
  let count = 0;
  for (let o = 0; o < records.length; count++) {
    const length = (records[o]! << 8) | records[o + 1]!;
    if (length < 16) throw new Error(`record ${count} is shorter than a tag`);
    total += length - 16;
    o += 2 + length;
  }
  const out = new Uint8Array(total);
  const iv = new Uint8Array(12);
  const view = new DataView(iv.buffer);
  let at = 0;
  for (let o = 0, i = 0; o < records.length; i++) {
    const length = (records[o]! << 8) | records[o + 1]!;
    const end = o + 2 + length;
    const n = nonce + i;
    view.setUint32(4, n % 0x100000000, true);
    view.setUint32(8, Math.floor(n / 0x100000000), true);
    const decipher = createDecipheriv("chacha20-poly1305", key, iv, {
      authTagLength: 16,
    });
    decipher.setAuthTag(records.subarray(end - 16, end));
    const body = decipher.update(records.subarray(o + 2, end - 16));
    try {
      decipher.final();
    } catch {
      throw new Error(`record ${i} failed authentication`);
    }
    out.set(body, at);
    at += body.length;
    o = end;
  }
  return out;
}

/** Counts the whole records at the start of `bytes` and their length. */
export function wholeRecords(
  bytes: Uint8Array,
): { count: number; length: number } {
  let o = 0, count = 0;
  while (o + 2 <= bytes.length) {
    const end = o + 2 + ((bytes[o]! << 8) | bytes[o + 1]!);
    if (end > bytes.length) break;
    o = end;
    count++;
  }
  return { count, length: o };
}

/** What a worker is asked. */
interface Job {
  id: number;
  key: Uint8Array;
  nonce: number;
  data: Uint8Array;
}

/** The worker's program: `openRecords` and a message loop. */
function workerSource(): string {
  return `import { createDecipheriv } from "node:crypto";
const openRecords = ${openRecords.toString()};
self.onmessage = (event) => {
  const { id, key, nonce, data } = event.data;
  try {
    const out = openRecords(key, nonce, data);
    self.postMessage({ id, out }, [out.buffer]);
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message || error) });
  }
};`;
}

/**
 * Workers that open large runs of records. Started on first use,
 * shared by every connection that holds a lease, and terminated when the
 * last lease ends (so nothing keeps a finished program alive).
 */
class CipherPool {
  #workers: Worker[] = [];
  #url: string | undefined;
  #next = 0;
  #ids = 0;
  #leases = 0;
  #broken = false;
  readonly #pending = new Map<
    number,
    { resolve: (out: Uint8Array) => void; reject: (error: Error) => void }
  >();

  /** Takes a lease; returns `false` if workers cannot run here. */
  acquire(): boolean {
    if (this.#broken || typeof Worker === "undefined") return false;
    this.#leases++;
    return true;
  }

  /** Ends a lease; the last one stops the workers. */
  release(): void {
    if (--this.#leases > 0) return;
    this.#leases = 0;
    for (const worker of this.#workers) worker.terminate();
    this.#workers = [];
    for (const { reject } of this.#pending.values()) {
      reject(new Error("Cannot finish: the cipher workers stopped"));
    }
    this.#pending.clear();
  }

  #worker(): Worker | undefined {
    const size = Math.max(
      1,
      Math.min(4, (navigator.hardwareConcurrency ?? 2) - 1),
    );
    if (this.#workers.length < size) {
      try {
        this.#url ??= URL.createObjectURL(
          new Blob([workerSource()], { type: "text/javascript" }),
        );
        const worker = new Worker(this.#url, { type: "module" });
        worker.onmessage = (event: MessageEvent) => this.#done(event.data);
        worker.onerror = (event) => {
          event.preventDefault();
          this.#broken = true;
        };
        this.#workers.push(worker);
      } catch {
        this.#broken = true;
      }
    }
    if (this.#workers.length === 0) return undefined;
    return this.#workers[this.#next++ % this.#workers.length];
  }

  #done(message: { id: number; out?: Uint8Array; error?: string }): void {
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    if (message.out) pending.resolve(message.out);
    else pending.reject(new Error(message.error ?? "cipher worker failed"));
  }

  /**
   * Opens records on a worker (`data` is transferred: the caller gives it
   * up), or on this thread if no worker can run.
   */
  open(key: Uint8Array, nonce: number, data: Uint8Array): Promise<Uint8Array> {
    const worker = this.#leases > 0 ? this.#worker() : undefined;
    if (!worker) {
      return Promise.resolve().then(() => openRecords(key, nonce, data));
    }
    const id = ++this.#ids;
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const job: Job = { id, key, nonce, data };
      worker.postMessage(job, [data.buffer as ArrayBuffer]);
    });
  }
}

/** The process's pool. */
export const cipherPool: CipherPool = new CipherPool();

/**
 * An encrypted connection after its Noise handshake: bytes written go out
 * as ChaCha20-Poly1305 transport records (at most 65535 bytes each, batched
 * into large writes), bytes read are authenticated record by record.
 *
 * @module
 */
import type { CipherState } from "./_noise.ts";
import {
  openRecords,
  RECORD_PLAIN,
  sealRecords,
  wholeRecords,
} from "./_record_cipher.ts";
import type { Duplex } from "./transport.ts";
import { ProtocolError } from "../errors.ts";
import { formatHostPort } from "./address.ts";
import { peerIdOf } from "./identity.ts";

/** Plaintext sealed per write to the connection. */
const WRITE_BATCH = 16 * RECORD_PLAIN;
/**
 * The receive buffer once large records arrive: a few records per read (a
 * downloader holds one per source, so it stays small).
 */
const LARGE_BUFFER = 4 * (RECORD_PLAIN + 18);
const EMPTY = new Uint8Array(0);

async function writeAll(conn: Duplex, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/**
 * An encrypted connection (see `secureConnect` and `secureAccept`, which
 * make them): a {@linkcode Duplex} whose reads and writes are plaintext.
 * A record that fails authentication ends the connection with a
 * {@linkcode ProtocolError}.
 *
 * @example Reading who is at the other end
 * ```ts ignore
 * const secure = await secureConnect(conn, address);
 * console.log(secure.remoteId);
 * ```
 */
export class SecureDuplex implements Duplex {
  /** The remote side's public key, as proved in the handshake. */
  readonly remoteKey: Uint8Array;
  readonly #conn: Duplex;
  readonly #send: CipherState;
  readonly #receive: CipherState;
  /** Ciphertext read and not yet opened: `#in[#start, #end)`. */
  #in: Uint8Array;
  #start = 0;
  #end: number;
  /** Opened plaintext not yet read: `#plain[#next…]`, the first from `#offset`. */
  #plain: Uint8Array[] = [];
  #next = 0;
  #offset = 0;
  #failure: Error | undefined;
  #closed = false;
  #writing: Promise<unknown> = Promise.resolve();

  /**
   * Wraps a connection after its handshake.
   *
   * @param conn The connection underneath.
   * @param keys The handshake's result.
   * @param leftover Bytes read past the handshake.
   */
  constructor(
    conn: Duplex,
    keys: { send: CipherState; receive: CipherState; remoteStatic: Uint8Array },
    leftover: Uint8Array = EMPTY,
  ) {
    this.#conn = conn;
    this.#send = keys.send;
    this.#receive = keys.receive;
    this.remoteKey = keys.remoteStatic;
    // Small: most connections carry a request or two; #fill grows it.
    this.#in = new Uint8Array(Math.max(4 * 1024, leftover.length));
    this.#in.set(leftover);
    this.#end = leftover.length;
  }

  /** The remote side's address. */
  get remoteAddr(): { hostname: string; port: number } {
    return this.#conn.remoteAddr;
  }

  /** The remote side's peer id (`peerIdOf` its key). */
  get remoteId(): string {
    return peerIdOf(this.remoteKey);
  }

  /**
   * Reads decrypted bytes into `p`.
   *
   * @param p The buffer to fill.
   * @returns The number of bytes, or `null` at the end of the stream.
   * @throws {ProtocolError} If a record fails authentication or the stream
   *   ends inside one.
   */
  async read(p: Uint8Array): Promise<number | null> {
    if (this.#failure) throw this.#failure;
    let filled = 0;
    while (true) {
      filled += this.#drain(p.subarray(filled));
      if (filled === p.length) return filled;
      // Everything opened is read: open what else is buffered, or read.
      if (this.#openBuffered()) continue;
      if (filled > 0) return filled;
      const n = await this.#fill();
      if (n === null) {
        if (this.#end > this.#start) {
          throw this.#fail(
            `Cannot read from ${this.#remote()}: the stream ended inside an encrypted record`,
          );
        }
        return null;
      }
    }
  }

  /** Copies opened plaintext into `p`, as much as there is and fits. */
  #drain(p: Uint8Array): number {
    let n = 0;
    while (n < p.length && this.#next < this.#plain.length) {
      const head = this.#plain[this.#next]!;
      const take = Math.min(p.length - n, head.length - this.#offset);
      p.set(head.subarray(this.#offset, this.#offset + take), n);
      n += take;
      this.#offset += take;
      if (this.#offset === head.length) {
        this.#next++;
        this.#offset = 0;
      }
    }
    return n;
  }

  #remote(): string {
    const { hostname, port } = this.#conn.remoteAddr;
    return formatHostPort(hostname, port);
  }

  /** Opens the whole records buffered, if any. */
  #openBuffered(): boolean {
    const buffered = this.#in.subarray(this.#start, this.#end);
    const { count, length } = wholeRecords(buffered);
    if (count === 0) return false;
    const { key, nonce } = this.#receive.reserve(count);
    try {
      this.#plain = openRecords(key, nonce, buffered.subarray(0, length));
    } catch {
      throw this.#fail(
        `Cannot read from ${this.#remote()}: an encrypted record failed authentication (changed on the way); connection closed`,
      );
    }
    this.#start += length;
    this.#next = 0;
    this.#offset = 0;
    return true;
  }

  /** Reads more ciphertext, making room for at least one whole record. */
  async #fill(): Promise<number | null> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    const need = this.#end - this.#start >= 2
      ? 2 + ((this.#in[this.#start]! << 8) | this.#in[this.#start + 1]!)
      : 2;
    if (this.#in.length - this.#start < Math.max(need, 4096)) {
      // Small until a large record comes; then room for many of them.
      const size = need > this.#in.length
        ? Math.max(need, LARGE_BUFFER)
        : this.#in.length;
      const next = size === this.#in.length ? this.#in : new Uint8Array(size);
      next.set(this.#in.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#in = next;
    }
    const n = await this.#conn.read(this.#in.subarray(this.#end));
    if (n !== null) this.#end += n;
    return n;
  }

  #fail(message: string): Error {
    this.#failure = new ProtocolError(message);
    this.close();
    return this.#failure;
  }

  /**
   * Encrypts and writes all of `p` (writes are serialised).
   *
   * @param p The bytes.
   * @returns `p.length`.
   */
  write(p: Uint8Array): Promise<number> {
    const run = this.#writing.then(() => this.#writeAll(p));
    this.#writing = run.catch(() => {});
    return run.then(() => p.length);
  }

  async #writeAll(p: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure;
    for (let offset = 0; offset < p.length;) {
      const batch = p.subarray(offset, offset + WRITE_BATCH);
      const { key, nonce } = this.#send.reserve(
        Math.ceil(batch.length / RECORD_PLAIN),
      );
      const records = sealRecords(key, nonce, batch);
      await writeAll(this.#conn, records);
      offset += batch.length;
    }
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* closed after a failure */ }
  }
}

/**
 * Private accept loop shared by the tracker and the peer: bounded connection
 * counts, protocol sniffing on the first byte, and a clean close that waits
 * for every handler.
 *
 * At a connection cap, a new connection is not simply refused: like a web
 * server closing idle keep-alive connections when it runs out of slots, the
 * server closes the idle connection (waiting for input, nothing being sent)
 * that has been quiet the longest — from the same address when that address
 * is at its cap, otherwise from the address holding the most connections —
 * and admits the newcomer. A flood of idle or trickling connections therefore
 * cannot lock honest clients out. A connection busy sending is displaced only
 * once its write has made no progress for `stalledWriteMs` (the remote side
 * stopped reading), and any write that makes no progress for `writeTimeoutMs`
 * closes its connection, so a client that never reads cannot keep a slot or
 * the reply buffer it pinned.
 *
 * @module
 */
import { formatHostPort } from "./address.ts";
import { isDisconnect } from "./connection.ts";
import { SECURE_MARKER, secureAccept, type SecureOptions } from "./secure.ts";
import {
  type Duplex,
  tcpTransport,
  type Transport,
  type TransportListener,
} from "./transport.ts";

/** Called for each accepted connection with the bytes already read. */
export type ConnectionHandler = (
  conn: Duplex,
  prefix: Uint8Array,
  remote: string,
) => Promise<void>;

export interface ServerLimits {
  /** Most open connections in total. */
  maxConnections: number;
  /** Most open connections from one IP address. */
  maxConnectionsPerAddress: number;
  /** How long a new connection may stay silent before it is dropped. */
  firstByteTimeoutMs: number;
  /**
   * A write that makes no progress for this long closes its connection (the
   * remote side stopped reading); by default `firstByteTimeoutMs`.
   */
  writeTimeoutMs: number;
  /**
   * At a cap, a connection whose write has made no progress for this long
   * may be closed for a newcomer, like an idle one.
   */
  stalledWriteMs: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 1024,
  maxConnectionsPerAddress: 64,
  firstByteTimeoutMs: 10_000,
  writeTimeoutMs: 10_000,
  stalledWriteMs: 1000,
};

/** Told when the server closes a connection whose writes stalled. */
export type DropHandler = (remote: string, message: string) => void;

/** One open connection and whether it is waiting for the remote side. */
interface Tracked {
  /** The accepted connection itself (closing it ends the handler's I/O). */
  conn: Duplex;
  ip: string;
  /** `ip:port`, for reports. */
  remote: string;
  /** A read is pending: the server waits for the remote side. */
  reading: boolean;
  /** Writes in progress: the server is sending to the remote side. */
  writing: number;
  /** When bytes last moved either way (ms). */
  lastActivity: number;
  /** When the pending writes last made progress, or began (ms). */
  writeProgress: number;
  /** When the first read must have delivered (ms; Infinity once it has). */
  firstByteBy: number;
  released: boolean;
}

/**
 * A connection as the handlers see it: every read and write goes through
 * here, so the server knows which connections sit idle waiting for the
 * remote side or stalled sending to it (evictable), and which are serving.
 * The server's deadline sweep (not a timer per connection) closes the ones
 * whose first byte or write is overdue.
 */
class TrackedDuplex implements Duplex {
  readonly #inner: Duplex;
  readonly #entry: Tracked;
  #closed = false;

  constructor(inner: Duplex, entry: Tracked) {
    this.#inner = inner;
    this.#entry = entry;
  }

  get remoteAddr(): { hostname: string; port: number } {
    return this.#inner.remoteAddr;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    const entry = this.#entry;
    entry.reading = true;
    try {
      return await this.#inner.read(buffer);
    } finally {
      entry.reading = false;
      entry.lastActivity = performance.now();
    }
  }

  async write(bytes: Uint8Array): Promise<number> {
    const entry = this.#entry;
    if (entry.writing++ === 0) entry.writeProgress = performance.now();
    try {
      return await this.#inner.write(bytes);
    } finally {
      entry.writing--;
      entry.lastActivity = entry.writeProgress = performance.now();
    }
  }

  close(): void {
    // Idempotent: closing twice would throw (and build) a BadResource error
    // for every connection, a measurable cost on a busy tracker.
    if (this.#closed) return;
    this.#closed = true;
    this.#inner.close();
  }
}

/** The handlers of a {@linkcode ConnectionServer}. */
export interface ConnectionHandlers {
  /**
   * Serves a seed-protocol connection (first byte printable); without it
   * such connections are closed unanswered (`--no-seed-protocol`).
   */
  legacy?: ConnectionHandler;
  /**
   * Serves a framed connection: a secure one (first byte 0, after its
   * handshake: a `SecureDuplex` and an empty prefix) or, if allowed, a
   * plaintext one (first byte a frame kind).
   */
  framed: ConnectionHandler;
  /** Told of a failed accept or handler. */
  error: (error: unknown, remote: string) => void;
  /** Told when a connection is closed because its writes stalled. */
  dropped?: DropHandler;
}

/** Options for {@linkcode ConnectionServer.listen}. */
export interface ServeOptions extends Partial<ServerLimits> {
  /** Address to bind. */
  hostname: string;
  /** Port to listen on (0 picks a free one). */
  port: number;
  /** How connections are accepted. @default {tcpTransport} */
  transport?: Transport;
  /**
   * This server's identity and swarm key for secure (Noise) connections;
   * the handshake must finish within `firstByteTimeoutMs`.
   */
  secure?: SecureOptions;
  /**
   * Also serve framed connections without encryption.
   *
   * @default {true}
   */
  plaintext?: boolean;
}

/** Accepts connections and dispatches them by their first byte. */
export class ConnectionServer {
  readonly listener: TransportListener;
  readonly #onLegacy: ConnectionHandler | undefined;
  readonly #secure: SecureOptions;
  readonly #plaintext: boolean;
  readonly #onFramed: ConnectionHandler;
  readonly #limits: ServerLimits;
  readonly #open = new Map<Duplex, Tracked>();
  readonly #perAddress = new Map<string, number>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #onError: (error: unknown, remote: string) => void;
  readonly #onDrop: DropHandler | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;
  #sweeper: ReturnType<typeof setInterval> | undefined;

  /**
   * Listens with a transport (TCP by default) and wraps the listener;
   * call {@linkcode ConnectionServer.start} to begin accepting.
   *
   * @param options Address, transport and limits.
   * @param handlers What to do with each connection.
   * @returns The server, not yet accepting.
   */
  static listen(
    options: ServeOptions,
    handlers: ConnectionHandlers,
  ): ConnectionServer {
    const {
      hostname,
      port,
      transport = tcpTransport,
      secure = {},
      plaintext = true,
      ...limits
    } = options;
    return new ConnectionServer(
      transport.listen({ hostname, port }),
      handlers,
      limits,
      { secure, plaintext },
    );
  }

  constructor(
    listener: TransportListener,
    handlers: ConnectionHandlers,
    limits: Partial<ServerLimits> = {},
    security: { secure?: SecureOptions; plaintext?: boolean } = {},
  ) {
    this.listener = listener;
    this.#secure = security.secure ?? {};
    this.#plaintext = security.plaintext ?? true;
    this.#onLegacy = handlers.legacy;
    this.#onFramed = handlers.framed;
    this.#onError = handlers.error;
    this.#onDrop = handlers.dropped;
    this.#limits = {
      ...DEFAULT_LIMITS,
      writeTimeoutMs: limits.firstByteTimeoutMs ??
        DEFAULT_LIMITS.writeTimeoutMs,
      ...limits,
    };
  }

  get port(): number {
    return this.listener.addr.port;
  }

  get openConnections(): number {
    return this.#open.size;
  }

  start(): void {
    if (this.#loop) return;
    this.#loop = this.#accept();
    // One timer for every connection's deadlines, a quarter of the shortest
    // timeout apart (10 ms to 1 s): a deadline is met that much late at
    // most, and a connection arms no timer of its own.
    const { firstByteTimeoutMs, writeTimeoutMs } = this.#limits;
    const shortest = Math.min(
      firstByteTimeoutMs,
      writeTimeoutMs > 0 ? writeTimeoutMs : Infinity,
    );
    const sweeper = setInterval(
      () => this.#sweep(),
      Math.min(1000, Math.max(10, shortest / 4)),
    );
    // The listener keeps a serving program alive, not this timer.
    Deno.unrefTimer(sweeper);
    this.#sweeper = sweeper;
  }

  /**
   * Closes the connections whose first byte is overdue, and those whose
   * pending write made no progress for the write timeout (the remote side
   * stopped reading).
   */
  #sweep(): void {
    const now = performance.now();
    const { writeTimeoutMs } = this.#limits;
    for (const entry of this.#open.values()) {
      if (entry.firstByteBy <= now) {
        entry.firstByteBy = Infinity;
        try {
          entry.conn.close();
        } catch { /* closed */ }
      } else if (
        writeTimeoutMs > 0 && entry.writing > 0 &&
        now - entry.writeProgress >= writeTimeoutMs
      ) {
        this.#stalled(entry);
      }
    }
  }

  async #accept(): Promise<void> {
    const incoming = this.listener[Symbol.asyncIterator]();
    while (!this.#closed) {
      let accepted: Duplex;
      try {
        const next = await incoming.next();
        if (next.done) return;
        accepted = next.value;
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        this.#onError(error, "listener");
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const ip = accepted.remoteAddr.hostname;
      if (!this.#makeRoom(ip)) {
        accepted.close();
        continue;
      }
      const entry: Tracked = {
        conn: accepted,
        ip,
        remote: formatHostPort(ip, accepted.remoteAddr.port),
        reading: true,
        writing: 0,
        lastActivity: performance.now(),
        writeProgress: 0,
        firstByteBy: performance.now() + this.#limits.firstByteTimeoutMs,
        released: false,
      };
      const conn = new TrackedDuplex(accepted, entry);
      this.#open.set(accepted, entry);
      this.#perAddress.set(ip, (this.#perAddress.get(ip) ?? 0) + 1);
      const task = this.#handle(conn, entry).finally(() => {
        this.#release(entry);
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  /** Closes a connection whose write made no progress in time. */
  #stalled(entry: Tracked): void {
    if (entry.released || this.#closed) return;
    this.#release(entry);
    try {
      entry.conn.close();
    } catch { /* already closed */ }
    this.#onDrop?.(
      entry.remote,
      `Cannot write to ${entry.remote}: no progress for ${this.#limits.writeTimeoutMs} ms (the client stopped reading)`,
    );
  }

  /** Forgets a connection's slot (idempotent). */
  #release(entry: Tracked): void {
    if (entry.released) return;
    entry.released = true;
    this.#open.delete(entry.conn);
    const left = (this.#perAddress.get(entry.ip) ?? 1) - 1;
    if (left <= 0) this.#perAddress.delete(entry.ip);
    else this.#perAddress.set(entry.ip, left);
  }

  /**
   * Ensures a connection from `ip` fits under both caps, closing the
   * longest-waiting idle or stalled connection if a cap is reached.
   *
   * @returns `false` if every candidate is busy (refuse the newcomer).
   */
  #makeRoom(ip: string): boolean {
    const perAddressFull = (this.#perAddress.get(ip) ?? 0) >=
      this.#limits.maxConnectionsPerAddress;
    const totalFull = this.#open.size >= this.#limits.maxConnections;
    if (!perAddressFull && !totalFull) return true;
    let victim: Tracked | undefined;
    let victimCount = -1;
    const stalledSince = performance.now() - this.#limits.stalledWriteMs;
    for (const entry of this.#open.values()) {
      const idle = entry.reading && entry.writing === 0;
      const stalled = entry.writing > 0 && entry.writeProgress <= stalledSince;
      if (!idle && !stalled) continue;
      if (perAddressFull && entry.ip !== ip) continue;
      // At the total cap, take from the address holding the most slots.
      const count = perAddressFull ? 0 : this.#perAddress.get(entry.ip) ?? 0;
      if (
        !victim || count > victimCount ||
        (count === victimCount && entry.lastActivity < victim.lastActivity)
      ) {
        victim = entry;
        victimCount = count;
      }
    }
    if (!victim) return false;
    this.#release(victim);
    try {
      victim.conn.close();
    } catch { /* already closed */ }
    return true;
  }

  async #handle(conn: Duplex, entry: Tracked): Promise<void> {
    const { remote } = entry;
    try {
      // The first read only picks the protocol: a handshake or a request
      // line continues in later reads. The sweep closes a connection that
      // sends nothing in time (see `firstByteBy`).
      const first = new Uint8Array(4 * 1024);
      let n: number | null;
      try {
        n = await conn.read(first);
      } finally {
        entry.firstByteBy = Infinity;
      }
      if (n === null || n === 0) return;
      const prefix = first.subarray(0, n);
      // A frame starts with a control byte (kind 1 or 2); printable text is
      // a seed-protocol line (`{…}`, or garbage answered with a status error).
      if (prefix[0] === SECURE_MARKER) {
        const secure = await secureAccept(conn, prefix, {
          ...this.#secure,
          timeoutMs: this.#limits.firstByteTimeoutMs,
        });
        await this.#onFramed(secure, new Uint8Array(0), remote);
      } else if (prefix[0]! >= 0x20 && prefix[0]! < 0x7f) {
        if (this.#onLegacy) await this.#onLegacy(conn, prefix, remote);
      } else if (this.#plaintext) {
        await this.#onFramed(conn, prefix, remote);
      }
    } catch (error) {
      if (!this.#closed && !isDisconnect(error)) this.#onError(error, remote);
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    try {
      this.listener.close();
    } catch { /* closed */ }
    for (const conn of this.#open.keys()) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await this.#loop;
    await Promise.allSettled([...this.#tasks]);
  }
}

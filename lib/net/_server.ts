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
import { formatHostPort, isDisconnect } from "./connection.ts";

/** Called for each accepted connection with the bytes already read. */
export type ConnectionHandler = (
  conn: Deno.TcpConn,
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
  conn: Deno.TcpConn;
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
  released: boolean;
}

/** Accepts connections and dispatches them by their first byte. */
export class ConnectionServer {
  readonly listener: Deno.TcpListener;
  readonly #onLegacy: ConnectionHandler;
  readonly #onFramed: ConnectionHandler;
  readonly #limits: ServerLimits;
  readonly #open = new Map<Deno.TcpConn, Tracked>();
  readonly #perAddress = new Map<string, number>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #onError: (error: unknown, remote: string) => void;
  readonly #onDrop: DropHandler | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;

  constructor(
    listener: Deno.TcpListener,
    handlers: {
      legacy: ConnectionHandler;
      framed: ConnectionHandler;
      error: (error: unknown, remote: string) => void;
      /** Told when a connection is closed because its writes stalled. */
      dropped?: DropHandler;
    },
    limits: Partial<ServerLimits> = {},
  ) {
    this.listener = listener;
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
    this.#loop ??= this.#accept();
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.listener.accept();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        this.#onError(error, "listener");
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const ip = conn.remoteAddr.hostname;
      if (!this.#makeRoom(ip)) {
        conn.close();
        continue;
      }
      const entry: Tracked = {
        conn,
        ip,
        remote: formatHostPort(ip, conn.remoteAddr.port),
        reading: true,
        writing: 0,
        lastActivity: performance.now(),
        writeProgress: 0,
        released: false,
      };
      // Every read and write the handlers make goes through here, so the
      // server knows which connections sit idle waiting for the remote side
      // or stalled sending to it (evictable), and which are serving; and
      // each write must make progress within the write timeout.
      const read = conn.read.bind(conn);
      conn.read = async (buffer: Uint8Array): Promise<number | null> => {
        entry.reading = true;
        try {
          return await read(buffer);
        } finally {
          entry.reading = false;
          entry.lastActivity = performance.now();
        }
      };
      const write = conn.write.bind(conn);
      const writeTimeoutMs = this.#limits.writeTimeoutMs;
      conn.write = async (bytes: Uint8Array): Promise<number> => {
        if (entry.writing++ === 0) entry.writeProgress = performance.now();
        const timer = writeTimeoutMs > 0
          ? setTimeout(() => this.#stalled(entry), writeTimeoutMs)
          : undefined;
        try {
          return await write(bytes);
        } finally {
          clearTimeout(timer);
          entry.writing--;
          entry.lastActivity = entry.writeProgress = performance.now();
        }
      };
      this.#open.set(conn, entry);
      this.#perAddress.set(ip, (this.#perAddress.get(ip) ?? 0) + 1);
      const task = this.#handle(conn).finally(() => {
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

  async #handle(conn: Deno.TcpConn): Promise<void> {
    const remote = formatHostPort(
      conn.remoteAddr.hostname,
      conn.remoteAddr.port,
    );
    try {
      const first = new Uint8Array(16 * 1024);
      const timer = setTimeout(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      }, this.#limits.firstByteTimeoutMs);
      let n: number | null;
      try {
        n = await conn.read(first);
      } finally {
        clearTimeout(timer);
      }
      if (n === null || n === 0) return;
      const prefix = first.subarray(0, n);
      // A frame starts with a control byte (kind 1 or 2); printable text is
      // a seed-protocol line (`{…}`, or garbage answered with a status error).
      if (prefix[0]! >= 0x20 && prefix[0]! < 0x7f) {
        await this.#onLegacy(conn, prefix, remote);
      } else {
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

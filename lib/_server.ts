/**
 * Private accept loop shared by the tracker and the peer: bounded connection
 * counts, protocol sniffing on the first byte, and a clean close that waits
 * for every handler.
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
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 1024,
  maxConnectionsPerAddress: 64,
  firstByteTimeoutMs: 10_000,
};

/** Accepts connections and dispatches them by their first byte. */
export class ConnectionServer {
  readonly listener: Deno.TcpListener;
  readonly #onLegacy: ConnectionHandler;
  readonly #onFramed: ConnectionHandler;
  readonly #limits: ServerLimits;
  readonly #open = new Set<Deno.TcpConn>();
  readonly #perAddress = new Map<string, number>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #onError: (error: unknown, remote: string) => void;
  #closed = false;
  #loop: Promise<void> | undefined;

  constructor(
    listener: Deno.TcpListener,
    handlers: {
      legacy: ConnectionHandler;
      framed: ConnectionHandler;
      error: (error: unknown, remote: string) => void;
    },
    limits: Partial<ServerLimits> = {},
  ) {
    this.listener = listener;
    this.#onLegacy = handlers.legacy;
    this.#onFramed = handlers.framed;
    this.#onError = handlers.error;
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
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
      const perAddress = this.#perAddress.get(ip) ?? 0;
      if (
        this.#open.size >= this.#limits.maxConnections ||
        perAddress >= this.#limits.maxConnectionsPerAddress
      ) {
        conn.close();
        continue;
      }
      this.#open.add(conn);
      this.#perAddress.set(ip, perAddress + 1);
      const task = this.#handle(conn).finally(() => {
        this.#open.delete(conn);
        const left = (this.#perAddress.get(ip) ?? 1) - 1;
        if (left <= 0) this.#perAddress.delete(ip);
        else this.#perAddress.set(ip, left);
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  async #handle(conn: Deno.TcpConn): Promise<void> {
    const remote = formatHostPort(
      conn.remoteAddr.hostname,
      conn.remoteAddr.port,
    );
    try {
      const first = new Uint8Array(64 * 1024);
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
      if (prefix[0] === 0x7b /* { */) {
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
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await this.#loop;
    await Promise.allSettled([...this.#tasks]);
  }
}

/**
 * The transport seam: how connections are made and accepted. The protocol
 * runs over any {@linkcode Duplex}; {@linkcode tcpTransport} is the default,
 * and encryption or a private-swarm handshake wrap a transport instead of
 * being threaded through every caller.
 *
 * @module
 */
import { TimeoutError } from "../errors.ts";
import { parseHostPort } from "./address.ts";

/** A minimal two-way byte stream: what the protocol needs of a connection. */
export interface Duplex {
  /**
   * Reads into `p`.
   *
   * @param p The buffer to fill.
   * @returns The number of bytes read, or `null` at the end of the stream.
   */
  read(p: Uint8Array): Promise<number | null>;
  /**
   * Writes some of `p` (possibly fewer bytes than given).
   *
   * @param p The bytes to write.
   * @returns The number of bytes written.
   */
  write(p: Uint8Array): Promise<number>;
  /** Closes the stream; pending reads end or fail. */
  close(): void;
  /** The remote end's address. */
  readonly remoteAddr: { hostname: string; port: number };
  /** This end's address, when the transport knows it (TCP does). */
  readonly localAddr?: { hostname: string; port: number };
}

/**
 * Incoming connections, as an async iterable that ends when the listener is
 * closed. A failed accept rejects `next()`; a later `next()` tries again.
 */
export interface TransportListener extends AsyncIterable<Duplex> {
  /** The local address listened on (the real port when 0 was asked). */
  readonly addr: { hostname: string; port: number };
  /** Stops accepting; iteration ends. */
  close(): void;
}

/** Options for {@linkcode Transport.dial}. */
export interface DialOptions {
  /** Give up after this many milliseconds (no limit when absent). */
  timeoutMs?: number;
  /** Gives up when aborted, rejecting with the signal's reason. */
  signal?: AbortSignal;
  /**
   * The public key the remote side must prove (an encrypting transport
   * refuses any other; plain TCP ignores it).
   */
  remoteKey?: Uint8Array;
}

/** Makes and accepts connections: TCP by default, or a wrapper around one. */
export interface Transport {
  /**
   * Connects to `address`.
   *
   * @param address `host:port`.
   * @param options Time limit and cancellation.
   * @returns The connection.
   */
  dial(address: string, options?: DialOptions): Promise<Duplex>;
  /**
   * Listens on a local address.
   *
   * @param options The host and port (0 for any free port).
   * @returns The listener.
   */
  listen(options: { hostname: string; port: number }): TransportListener;
}

/** Whether an error means a listener was closed. */
function isClosed(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/** Deno's TCP listener as a {@linkcode TransportListener}. */
class TcpListener implements TransportListener {
  readonly #listener: Deno.TcpListener;
  #closed = false;

  constructor(listener: Deno.TcpListener) {
    this.#listener = listener;
  }

  get addr(): { hostname: string; port: number } {
    return this.#listener.addr;
  }

  [Symbol.asyncIterator](): AsyncIterator<Duplex> {
    return {
      next: async (): Promise<IteratorResult<Duplex>> => {
        if (this.#closed) return { done: true, value: undefined };
        try {
          const conn = await this.#listener.accept();
          // Frames are written whole; Nagle's algorithm only adds latency.
          conn.setNoDelay(true);
          return { done: false, value: conn };
        } catch (error) {
          if (this.#closed || isClosed(error)) {
            return { done: true, value: undefined };
          }
          throw error;
        }
      },
      return: (): Promise<IteratorResult<Duplex>> => {
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
  }
}

/**
 * Plain TCP (`Deno.connect`, `Deno.listen`), with Nagle's algorithm off: the
 * default transport of trackers, peers and clients.
 *
 * @example Dialling a TCP listener
 * ```ts
 * import { tcpTransport } from "@shoal/shoal/net";
 * const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener[Symbol.asyncIterator]().next();
 * const conn = await tcpTransport.dial(`127.0.0.1:${listener.addr.port}`, {
 *   timeoutMs: 1000,
 * });
 * conn.close();
 * (await accepted).value?.close();
 * listener.close();
 * ```
 */
export const tcpTransport: Transport = {
  async dial(address: string, options: DialOptions = {}): Promise<Duplex> {
    const { hostname, port } = parseHostPort(address);
    const { timeoutMs, signal } = options;
    signal?.throwIfAborted();
    const pending = Deno.connect({ hostname, port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () =>
            reject(
              new TimeoutError(
                `Cannot connect to ${address}: no answer within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
      }
      if (signal) {
        onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
      }
    });
    try {
      const conn = await Promise.race([pending, stop]);
      conn.setNoDelay(true);
      return conn;
    } catch (error) {
      pending.then((conn) => conn.close(), () => {});
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  },
  listen(options: { hostname: string; port: number }): TransportListener {
    return new TcpListener(
      Deno.listen({ hostname: options.hostname, port: options.port }),
    );
  },
};

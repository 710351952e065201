/**
 * A TCP relay for tests: forwards connections to a target port, records
 * every byte both ways, and can flip one byte of what clients send.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** Options for {@linkcode startRelay}. */
export interface RelayOptions {
  /**
   * Flip the lowest bit of the byte at this offset of what each client
   * sends (counted per connection).
   */
  flipClientByteAt?: number;
}

/** A running relay. */
export interface Relay extends AsyncDisposable {
  /** `127.0.0.1:port` to connect to instead of the target. */
  readonly address: string;
  /** Connections relayed so far. */
  readonly connections: number;
  /** Everything that went through, both ways. */
  bytes(): Uint8Array;
}

/**
 * Starts a relay to `127.0.0.1:targetPort` on a free loopback port.
 *
 * @param targetPort Where to forward.
 * @param options Tampering.
 * @returns The relay; `await using` it.
 */
export function startRelay(
  targetPort: number,
  options: RelayOptions = {},
): Relay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const recorded: Uint8Array[] = [];
  const conns = new Set<Deno.Conn>();
  const pumps = new Set<Promise<void>>();
  let connections = 0;
  const pump = async (from: Deno.Conn, to: Deno.Conn, flipAt?: number) => {
    const buffer = new Uint8Array(64 * 1024);
    let offset = 0;
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (flipAt !== undefined && flipAt >= offset && flipAt < offset + n) {
          buffer[flipAt - offset]! ^= 1;
        }
        offset += n;
        recorded.push(buffer.slice(0, n));
        for (let off = 0; off < n;) {
          off += await to.write(buffer.subarray(off, n));
        }
      }
    } catch {
      // One side went away; both are closed below.
    } finally {
      for (const conn of [from, to]) {
        if (conns.delete(conn)) conn.close();
      }
    }
  };
  const start = (task: Promise<void>) => {
    pumps.add(task);
    task.finally(() => pumps.delete(task));
  };
  const loop = (async () => {
    for await (const inbound of listener) {
      connections++;
      conns.add(inbound);
      let outbound: Deno.Conn;
      try {
        outbound = await Deno.connect({
          hostname: "127.0.0.1",
          port: targetPort,
        });
      } catch {
        conns.delete(inbound);
        inbound.close();
        continue;
      }
      conns.add(outbound);
      start(pump(inbound, outbound, options.flipClientByteAt));
      start(pump(outbound, inbound));
    }
  })().catch(() => {});
  return {
    address: `127.0.0.1:${listener.addr.port}`,
    get connections() {
      return connections;
    },
    bytes: () => Buffer.concat(recorded),
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
      for (const conn of conns) conn.close();
      conns.clear();
      await Promise.all(pumps);
    },
  };
}

/**
 * Whether `needle` occurs in `haystack`.
 *
 * @param haystack Bytes searched.
 * @param needle Bytes looked for.
 * @returns `true` if found.
 */
export function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).includes(Buffer.from(needle));
}

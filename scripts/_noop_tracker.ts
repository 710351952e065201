/**
 * Private helper of `bench_tracker.ts`: a server that speaks the tracker's
 * framed protocol in plaintext and does no work. Each request gets a fixed
 * reply of the right type (one peer, one file), so the benchmark can run its
 * load against it and report the latency and throughput that the machine,
 * the runtime and the load generator allow before any tracker work.
 *
 * `deno run --allow-net scripts/_noop_tracker.ts` prints
 * `noop tracker listening on 127.0.0.1:PORT` and serves until killed.
 *
 * @module
 */
import { writeAll } from "../lib/net/connection.ts";
import { encodeJsonFrame, FrameDecoder } from "../lib/net/wire.ts";

const ID = "f".repeat(64);
/** Each request type's reply, without its request id. */
const REPLIES: Record<string, Record<string, unknown>> = {
  register: { type: "registered", address: "127.0.0.1:1" },
  heartbeat: { type: "ok" },
  getpeers: {
    type: "peers",
    peers: [{ address: "127.0.0.1:1", protocol: "shoal", name: "x", id: ID }],
  },
  list: { type: "files", files: [{ name: "x", id: ID, size: 1, holders: 1 }] },
};
/** The benchmark's requests are small; a longer frame closes the connection. */
const MAX_REQUEST = 64 * 1024;

/**
 * Answers each frame on `conn` until it closes or sends something else.
 *
 * @param conn A client's connection; closed when done.
 */
export async function serveNoop(conn: Deno.Conn): Promise<void> {
  const frames = new FrameDecoder({
    maxFrameSize: MAX_REQUEST,
    allowData: false,
  });
  const buffer = new Uint8Array(4096);
  try {
    for (
      let n = await conn.read(buffer);
      n !== null;
      n = await conn.read(buffer)
    ) {
      for (const frame of frames.push(buffer.subarray(0, n))) {
        if (frame.kind !== "json") return;
        const { type, rid } = frame.message as { type?: string; rid?: number };
        const reply = REPLIES[type ?? ""] ?? REPLIES.heartbeat;
        await writeAll(conn, encodeJsonFrame({ ...reply, rid }));
      }
    }
  } catch {
    // A client that went away, or sent something that is not a request:
    // nothing to answer.
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

if (import.meta.main) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`noop tracker listening on 127.0.0.1:${listener.addr.port} `);
  for await (const conn of listener) void serveNoop(conn);
}

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
import { FRAME_HEADER_SIZE, FRAME_JSON } from "../lib/net/wire.ts";

const ID = "f".repeat(64);
/** Each reply's JSON up to its request id. */
const REPLIES: Record<string, string> = {
  register: `{"type":"registered","address":"127.0.0.1:1"`,
  heartbeat: `{"type":"ok"`,
  getpeers:
    `{"type":"peers","peers":[{"address":"127.0.0.1:1","protocol":"shoal","name":"x","id":"${ID}"}]`,
  list:
    `{"type":"files","files":[{"name":"x","id":"${ID}","size":1,"holders":1}]`,
};
/** The benchmark's requests are small; a longer frame closes the connection. */
const MAX_REQUEST = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Answers each frame on `conn` until it closes or sends something else.
 *
 * @param conn A client's connection; closed when done.
 */
export async function serveNoop(conn: Deno.Conn): Promise<void> {
  let buffer = new Uint8Array(4096);
  let filled = 0;
  try {
    while (true) {
      if (filled === buffer.length) {
        if (buffer.length >= MAX_REQUEST + FRAME_HEADER_SIZE) return;
        const grown = new Uint8Array(buffer.length * 2);
        grown.set(buffer);
        buffer = grown;
      }
      const n = await conn.read(buffer.subarray(filled));
      if (n === null) return;
      filled += n;
      let start = 0;
      while (filled - start >= FRAME_HEADER_SIZE) {
        const view = new DataView(buffer.buffer, start);
        const length = view.getUint32(1);
        if (buffer[start] !== FRAME_JSON || length > MAX_REQUEST) return;
        const end = start + FRAME_HEADER_SIZE + length;
        if (end > filled) break;
        const request = JSON.parse(
          decoder.decode(buffer.subarray(start + FRAME_HEADER_SIZE, end)),
        );
        const body = encoder.encode(
          `${REPLIES[request.type] ?? REPLIES.heartbeat},"rid":${
            Number(request.rid) || 0
          }}`,
        );
        const frame = new Uint8Array(FRAME_HEADER_SIZE + body.length);
        frame[0] = FRAME_JSON;
        new DataView(frame.buffer).setUint32(1, body.length);
        frame.set(body, FRAME_HEADER_SIZE);
        for (let sent = 0; sent < frame.length;) {
          sent += await conn.write(frame.subarray(sent));
        }
        start = end;
      }
      buffer.copyWithin(0, start, filled);
      filled -= start;
    }
  } catch {
    // A client that went away: nothing to answer.
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

/**
 * Tests of the accept loop shared by tracker and peer (`lib/_server.ts`) on
 * real sockets: a silent connection is closed after the first-byte timeout,
 * a reply the client never reads is abandoned after the write timeout, and at the connection cap a stalled writer makes room for a
 * newcomer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ConnectionServer, type ServerLimits } from "../lib/net/_server.ts";
import { writeAll } from "../lib/net/connection.ts";
import { readLine } from "../lib/protocol/legacy.ts";
import { pollUntil } from "./_helpers.ts";

/** More than loopback buffers hold (≈ 4 MiB here), so the write stalls. */
const BIG = 32 * 1024 * 1024;
const encoder = new TextEncoder();

/**
 * A server whose seed-protocol handler answers `big` with {@linkcode BIG}
 * bytes and anything else with `pong`.
 */
function bigReplyServer(
  limits: Partial<ServerLimits>,
  dropped: string[] = [],
): ConnectionServer {
  const server = ConnectionServer.listen(
    { hostname: "127.0.0.1", port: 0, ...limits },
    {
      legacy: async (conn, prefix) => {
        const { line } = await readLine(conn, prefix, 1024, 5000);
        await writeAll(
          conn,
          line === "big" ? new Uint8Array(BIG) : encoder.encode("pong\n"),
        );
      },
      framed: () => Promise.resolve(),
      error: () => {},
      dropped: (_remote, message) => dropped.push(message),
    },
  );
  server.start();
  return server;
}

async function connect(server: ConnectionServer, line: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, encoder.encode(line + "\n"));
  return conn;
}

/** Asks for the big reply and reads one byte of it: the reply has begun. */
async function stalledClient(server: ConnectionServer): Promise<Deno.Conn> {
  const conn = await connect(server, "big");
  assert.equal(await conn.read(new Uint8Array(1)), 1);
  return conn;
}

/** Reads until the end (or a reset): how many bytes came. */
async function drain(conn: Deno.Conn): Promise<number> {
  const buffer = new Uint8Array(1024 * 1024);
  let total = 0;
  try {
    for (
      let n = await conn.read(buffer);
      n !== null;
      n = await conn.read(buffer)
    ) {
      total += n;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  }
  return total;
}

Deno.test("ConnectionServer closes a connection silent past the first-byte timeout, and serves one that speaks in time", async () => {
  const server = bigReplyServer({ firstByteTimeoutMs: 1000 });
  try {
    const started = performance.now();
    const open = () =>
      Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const silent = await open();
    const late = await open();
    try {
      // Well within the timeout, the second one asks: it is answered.
      await new Promise((resolve) => setTimeout(resolve, 100));
      await writeAll(late, encoder.encode("ping\n"));
      const { line } = await readLine(late, new Uint8Array(), 1024, 5000);
      assert.equal(line, "pong");
      // The silent one is closed by the server: not before the timeout,
      // and not long after it (the read ends instead of the timer below).
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        drain(silent).then(() => "closed"),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve("still open"), 10_000);
        }),
      ]);
      clearTimeout(timer);
      assert.equal(closed, "closed");
      assert.ok(
        performance.now() - started >= 1000,
        "closed before its first-byte timeout",
      );
    } finally {
      silent.close();
      late.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("ConnectionServer abandons a reply the client stops reading after the write timeout", async () => {
  const dropped: string[] = [];
  const server = bigReplyServer({
    writeTimeoutMs: 300,
    firstByteTimeoutMs: 10_000,
  }, dropped);
  const client = await stalledClient(server);
  try {
    await pollUntil(
      () => dropped.length > 0 || undefined,
      "the server never gave up on a reply nobody reads",
      { timeoutMs: 10_000 },
    );
    assert.match(dropped[0]!, /no progress for 300 ms/);
    await pollUntil(
      () => server.openConnections === 0 || undefined,
      "the stalled connection still holds its slot",
      { timeoutMs: 5000 },
    );
    // What the client reads now ends short: the reply was cut off.
    assert.ok((await drain(client)) < BIG);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("ConnectionServer at its cap closes a stalled writer to admit a newcomer", async () => {
  // The write timeout is far away: only the eviction can make room.
  const server = bigReplyServer({
    maxConnections: 2,
    maxConnectionsPerAddress: 2,
    writeTimeoutMs: 60_000,
    stalledWriteMs: 200,
    firstByteTimeoutMs: 10_000,
  });
  const stalled = [await stalledClient(server), await stalledClient(server)];
  try {
    const reply = await pollUntil(
      async () => {
        const conn = await connect(server, "ping");
        try {
          const { line } = await readLine(conn, new Uint8Array(), 1024, 2000);
          return line;
        } catch {
          return undefined; // refused: try again
        } finally {
          conn.close();
        }
      },
      "an honest client was refused while stalled writers held every slot",
      {
        timeoutMs: 10_000,
        intervalMs: 100,
      },
    );
    assert.equal(reply, "pong");
    // At least one stalled reply was cut off to make room.
    const received = await Promise.all(stalled.map(drain));
    assert.ok(received.some((n) => n < BIG), `received ${received}`);
  } finally {
    for (const conn of stalled) conn.close();
    await server.close();
  }
});

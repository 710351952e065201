/**
 * Clients that ask and never read their replies, against the real tracker
 * process and a real peer: seed-protocol `list` clients at the tracker's
 * connection cap, a framed client pipelining `list` requests, and
 * seed-protocol `download` clients at the peer's cap. Honest clients must
 * still be served, replies stay bounded, and the stalled connections are
 * closed within the write timeout.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeAll } from "../../lib/net/connection.ts";
import {
  DEFAULT_MAX_LINE_BYTES,
  encodeLine,
  legacyRequest,
  readLine,
} from "../../lib/protocol/legacy.ts";
import { startPeer } from "../../lib/peer/node.ts";
import { startTracker } from "../../lib/tracker/server.ts";
import { encodeJsonFrame } from "../../lib/net/wire.ts";
import { pollUntil, spawnTracker, tempDir } from "../_helpers.ts";

/** A long, valid name: 4 × 200-byte folders and a unique file. */
function longName(peer: number, i: number): string {
  const folders = ["a", "b", "c", "d"].map((c) => c.repeat(200)).join("/");
  return `${folders}/p${peer}-f${i}.bin`;
}

/**
 * Registers 20 seed-protocol peers × 1000 long names: ~17 MB of names, far
 * more than loopback buffers (~4 MiB), so an unbounded `list` reply to a
 * client that does not read would stall its writer.
 */
async function fillTracker(address: string): Promise<void> {
  for (let peer = 0; peer < 20; peer++) {
    const reply = await legacyRequest(address, {
      command: "register",
      address: `127.0.0.1:${30_000 + peer}`,
      files: Array.from({ length: 1000 }, (_, i) => longName(peer, i)),
    });
    assert.equal(reply.status, "ok");
  }
}

async function connectAndSend(port: number, bytes: Uint8Array) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, bytes);
  return conn;
}

/** Everything a connection still delivers, up to its end or a reset. */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(256 * 1024);
  try {
    for (
      let n = await conn.read(buffer);
      n !== null;
      n = await conn.read(buffer)
    ) {
      parts.push(buffer.slice(0, n));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  }
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

Deno.test("Seed list clients that never read neither lock out honest clients at the cap nor get unbounded replies", async () => {
  // Only flags the tracker always had: the write timeout defaults to the
  // read timeout, and the cap is small. Peers must outlive the slow fill:
  // a long interval keeps their expiry out of the way.
  await using tracker = await spawnTracker({
    interval: "30s",
    args: [
      "--read-timeout",
      "2s",
      "--max-connections",
      "12",
      "--max-connections-per-address",
      "12",
      "--rate-limit",
      "0",
    ],
  });
  await fillTracker(tracker.address);
  // Each list client reads one byte (its reply has begun), then stops.
  const stalled = await Promise.all(
    Array.from({ length: 12 }, async () => {
      const conn = await connectAndSend(
        tracker.port,
        encodeLine({ command: "list" }),
      );
      const first = new Uint8Array(1);
      assert.equal(await conn.read(first), 1);
      return { conn, first };
    }),
  );
  try {
    const reply = await pollUntil(
      () =>
        legacyRequest(tracker.address, {
          command: "getpeers",
          filename: longName(3, 7),
        }, 2000).catch(() => undefined),
      "an honest client was never served while list clients held the slots",
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.deepEqual(reply, { status: "ok", peers: ["127.0.0.1:30003"] });
    // Each list client got a bounded reply, then the end of the connection:
    // whole (it fit in the socket buffers), or cut off if its write stalled.
    for (const { conn, first } of stalled) {
      const rest = await readToEnd(conn);
      const text = new TextDecoder().decode(first) +
        new TextDecoder().decode(rest);
      assert.ok(
        text.length <= DEFAULT_MAX_LINE_BYTES,
        `a list reply of ${text.length} bytes`,
      );
      if (!text.endsWith("\n")) continue;
      const list = JSON.parse(text);
      assert.equal(list.status, "ok");
      assert.equal(list.truncated, true);
      const holders = Object.values(list.filemap as Record<string, string[]>);
      assert.ok(holders.length > 100);
      assert.ok(holders.every((h) => h.length === 1));
    }
  } finally {
    for (const { conn } of stalled) conn.close();
  }
});

Deno.test("A framed client that pipelines list requests and never reads is cut off at the write timeout", async () => {
  await using tracker = await spawnTracker({
    interval: "30s", // The filler registrations must outlive a slow run.
    args: ["--read-timeout", "2s", "--rate-limit", "0"],
  });
  await fillTracker(tracker.address);
  const requests = Array.from(
    { length: 20 },
    (_, rid) => encodeJsonFrame({ type: "list", rid }),
  );
  const conn = await connectAndSend(
    tracker.port,
    new Uint8Array(requests.flatMap((frame) => [...frame])),
  );
  try {
    const { match } = await tracker.waitFor(
      /dropped (127\.0\.0\.1:\d+): Cannot write to \S+: no progress for 2000 ms/,
      { timeoutMs: 20_000 },
    );
    assert.equal(
      match[1],
      `127.0.0.1:${(conn.localAddr as Deno.NetAddr).port}`,
    );
    // Closed: what is left to read ends, short of 20 replies.
    const bytes = await readToEnd(conn);
    assert.ok(bytes.length < 20 * 1024 * 1024, `${bytes.length} bytes`);
  } finally {
    conn.close();
  }
});

Deno.test("Seed download clients that never read do not lock an honest client out of the peer", async () => {
  await using dir = await tempDir();
  const shared = join(dir.path, "shared");
  await Deno.mkdir(shared);
  // Larger than loopback buffers hold, so every download's writer stalls.
  await Deno.writeFile(join(shared, "big.bin"), new Uint8Array(32 << 20));
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  await using peer = await startPeer({
    tracker: tracker.address,
    shared,
    hostname: "127.0.0.1",
    stateDir: join(dir.path, "state"),
    maxConnections: 4,
    // Far away: only evicting the stalled writers can make room in time.
    readTimeoutMs: 60_000,
    watch: false,
  });
  await pollUntil(
    async () =>
      (await tracker.store.getPeers({ name: "big.bin" })).length > 0 ||
      undefined,
    "the peer to register big.bin",
  );
  const request = encodeLine({ command: "download", filename: "big.bin" });
  // Each reads one byte (its download has begun), then stops reading.
  const stalled = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const conn = await connectAndSend(peer.port, request);
      assert.equal(await conn.read(new Uint8Array(1)), 1);
      return conn;
    }),
  );
  try {
    const reply = await pollUntil(
      async () => {
        const conn = await connectAndSend(peer.port, request);
        try {
          const { line } = await readLine(conn, new Uint8Array(), 1024, 2000);
          return JSON.parse(line);
        } catch {
          return undefined; // refused: all slots busy
        } finally {
          conn.close();
        }
      },
      "an honest downloader was refused while stalled downloads held every slot",
      {
        timeoutMs: 10_000,
        intervalMs: 100,
      },
    );
    assert.deepEqual(reply, { status: "ok", size: 32 << 20 });
  } finally {
    for (const conn of stalled) conn.close();
  }
});

/**
 * The transport seam of a peer: a peer started with a transport passed in
 * listens, reaches the tracker and downloads through it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startPeer } from "../../lib/peer/node.ts";
import { startTracker } from "../../lib/tracker/server.ts";
import {
  type Duplex,
  tcpTransport,
  type Transport,
  type TransportListener,
} from "../../lib/net/transport.ts";
import { tempDir, writeRandomFile } from "../_helpers.ts";

const KiB = 1024;

/** What went through a {@linkcode countingTransport}. */
interface Counts {
  dialed: number;
  accepted: number;
  bytesRead: number;
  bytesWritten: number;
}

/** Wraps a transport, counting connections and bytes both ways. */
function countingTransport(inner: Transport): {
  transport: Transport;
  counts: Counts;
} {
  const counts: Counts = {
    dialed: 0,
    accepted: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
  const wrap = (conn: Duplex): Duplex => ({
    async read(p) {
      const n = await conn.read(p);
      if (n !== null) counts.bytesRead += n;
      return n;
    },
    async write(p) {
      const n = await conn.write(p);
      counts.bytesWritten += n;
      return n;
    },
    close: () => conn.close(),
    get remoteAddr() {
      return conn.remoteAddr;
    },
  });
  const transport: Transport = {
    async dial(address, options) {
      const conn = await inner.dial(address, options);
      counts.dialed++;
      return wrap(conn);
    },
    listen(options): TransportListener {
      const listener = inner.listen(options);
      return {
        get addr() {
          return listener.addr;
        },
        close: () => listener.close(),
        [Symbol.asyncIterator]() {
          const incoming = listener[Symbol.asyncIterator]();
          return {
            async next() {
              const result = await incoming.next();
              if (result.done) return result;
              counts.accepted++;
              return { done: false, value: wrap(result.value) };
            },
          };
        },
      };
    },
  };
  return { transport, counts };
}

Deno.test("A peer started with a transport passed in serves and downloads through it", async () => {
  await using dirA = await tempDir();
  await using dirB = await tempDir();
  const fromA = await writeRandomFile(join(dirA.path, "from-a.bin"), 700 * KiB);
  const fromB = await writeRandomFile(join(dirB.path, "from-b.bin"), 500 * KiB);
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const { transport, counts } = countingTransport(tcpTransport);
  await using a = await startPeer({
    tracker: tracker.address,
    shared: dirA.path,
    hostname: "127.0.0.1",
    chunkSize: 64 * KiB,
    watch: false,
    transport,
  });
  await using b = await startPeer({
    tracker: tracker.address,
    shared: dirB.path,
    hostname: "127.0.0.1",
    chunkSize: 64 * KiB,
    watch: false,
  });
  await a.refresh();
  await b.refresh();
  assert.ok(counts.dialed > 0, "A reached the tracker through its transport");

  // Served through it: B's download reaches A's counted listener.
  const accepted = counts.accepted;
  const written = counts.bytesWritten;
  const got = await b.download("from-a.bin");
  assert.deepEqual(await Deno.readFile(got.path), fromA);
  assert.ok(counts.accepted > accepted, "A accepted through its transport");
  assert.ok(
    counts.bytesWritten - written >= fromA.length,
    `A wrote ${counts.bytesWritten - written} bytes through its transport`,
  );

  // Downloaded through it: A dials B (and the tracker) with its transport.
  const dialed = counts.dialed;
  const read = counts.bytesRead;
  const fetched = await a.download("from-b.bin");
  assert.deepEqual(await Deno.readFile(fetched.path), fromB);
  assert.ok(counts.dialed > dialed, "A dialed through its transport");
  assert.ok(
    counts.bytesRead - read >= fromB.length,
    `A read ${counts.bytesRead - read} bytes through its transport`,
  );
});

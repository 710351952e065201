/**
 * A seeder's memory with many upload connections left open and idle: it must
 * follow the chunks being served, not the number of connections.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RpcClient } from "../../lib/protocol/rpc.ts";
import {
  spawnPeer,
  spawnTracker,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

const MIB = 1024 * 1024;
const CHUNK = 4 * MIB;
/** Below the peer's per-address connection cap (64). */
const IDLE_CONNECTIONS = 56;

/** Resident memory of a process, from `/proc` (Linux). */
async function residentBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  assert.ok(kib, `no VmRSS in /proc/${pid}/status`);
  return Number(kib) * 1024;
}

Deno.test({
  name: "A seeder holds no chunk buffer for upload connections left idle",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using share = await tempDir();
    const bytes = await writeRandomFile(join(share.path, "big.bin"), 4 * CHUNK);
    await using tracker = await spawnTracker();
    await using peer = await spawnPeer({
      tracker: tracker.address,
      shared: share.path,
      chunkSize: "4M",
    });
    // Replies land in one scratch buffer: the test itself stays small.
    const scratch = new Uint8Array(CHUNK + 64);
    const options = {
      allocate: (size: number) => scratch.subarray(0, size),
      readBufferSize: 16 * 1024,
      requestTimeoutMs: 10_000,
    };
    await using first = await RpcClient.connect(peer.address, options);
    const reply = await first.call(
      { type: "manifest", name: "big.bin" },
      "manifest",
    );
    const { id, chunkSize } = reply.manifest as {
      id: string;
      chunkSize: number;
    };
    assert.equal(chunkSize, CHUNK);
    // Warm up: every chunk once, so the page cache and the code are hot.
    for (let index = 0; index < 4; index++) {
      const chunk = await first.request({ type: "chunk", id, index });
      assert.ok(chunk instanceof Uint8Array && chunk.length === CHUNK);
      assert.equal(chunk[0], bytes[index * CHUNK]);
    }
    const before = await residentBytes(peer.child.pid);

    // Each connection fetches one chunk, then stays open doing nothing.
    const idle: RpcClient[] = [];
    try {
      for (let i = 0; i < IDLE_CONNECTIONS; i++) {
        const client = await RpcClient.connect(peer.address, options);
        idle.push(client);
        const chunk = await client.request({ type: "chunk", id, index: i % 4 });
        assert.ok(chunk instanceof Uint8Array && chunk.length === CHUNK);
      }
      const after = await residentBytes(peer.child.pid);
      const grown = after - before;
      // One buffer per idle connection would be 56 × 4 MiB = 224 MiB.
      assert.ok(
        grown < 64 * MIB,
        `the seeder grew by ${
          (grown / MIB).toFixed(1)
        } MiB for ${IDLE_CONNECTIONS} idle connections`,
      );
    } finally {
      for (const client of idle) await client.close();
    }
  },
});

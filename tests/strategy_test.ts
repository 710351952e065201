/**
 * The download strategy seam: the default rarest-first strategy with
 * synthetic sources (no sockets), and a download that uses a strategy
 * passed in.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChunkBoard } from "../lib/download/scheduler.ts";
import {
  type ChunkChooser,
  defaultStrategy,
  type DownloadStrategy,
  rarestFirst,
} from "../lib/download/strategy.ts";
import { download } from "../lib/download/transfer.ts";
import { startTracker } from "../lib/tracker/server.ts";
import { startPeer } from "../lib/peer/node.ts";
import { TrackerClient } from "../lib/tracker/client.ts";
import { pollUntil, sha256File, tempDir, writeRandomFile } from "./_helpers.ts";

/** A bitfield of `total` chunks with `indices` set. */
function bits(total: number, indices: number[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(total / 8));
  for (const i of indices) out[i >>> 3]! |= 0x80 >>> (i & 7);
  return out;
}

/** Asks `chooser` for `key` and records the request on `board`. */
function take(board: ChunkBoard, chooser: ChunkChooser, key: string) {
  const index = chooser.next(key);
  if (index === undefined) return undefined;
  return board.request(index, key);
}

Deno.test("Default strategy asks in order while every source holds everything", () => {
  const board = new ChunkBoard(new Uint8Array([1, 0, 0, 0]));
  const chooser = defaultStrategy.choose(board);
  chooser.setSource("a", null);
  chooser.setSource("b", null);
  assert.deepEqual(take(board, chooser, "a"), { index: 1, duplicate: false });
  assert.deepEqual(take(board, chooser, "b"), { index: 2, duplicate: false });
  assert.deepEqual(take(board, chooser, "a"), { index: 3, duplicate: false });
});

Deno.test("Default strategy asks for the rarest chunk first", () => {
  const board = new ChunkBoard(new Uint8Array(8));
  const chooser = rarestFirst().choose(board);
  chooser.setSource("seed", null);
  chooser.setSource("x", bits(8, [0, 1, 2, 4, 5, 6, 7]));
  chooser.setSource("y", bits(8, [0, 1, 2, 5, 6, 7]));
  // Chunk 3 only the seed holds, chunk 4 the seed and x, the rest all three.
  assert.equal(take(board, chooser, "seed")?.index, 3);
  assert.equal(take(board, chooser, "seed")?.index, 4);
  assert.equal(take(board, chooser, "seed")?.index, 0);
});

Deno.test("Default strategy counts chunks a source announces after its map", () => {
  const board = new ChunkBoard(new Uint8Array(4));
  const chooser = rarestFirst().choose(board);
  chooser.setSource("seed", null);
  chooser.setSource("x", bits(4, [0, 2, 3]));
  // Chunk 1 is the rarest until x announces it; then chunk 0 is first of
  // the equally rare ones.
  chooser.addChunk("x", 1);
  assert.equal(take(board, chooser, "seed")?.index, 0);
  chooser.removeSource("x");
  // With x gone nobody is partial: plain order again.
  assert.equal(take(board, chooser, "seed")?.index, 1);
});

Deno.test("Default strategy asks partial holders only for chunks they have", () => {
  const board = new ChunkBoard(new Uint8Array(6));
  const chooser = rarestFirst().choose(board);
  chooser.setSource("p", bits(6, [1, 4]));
  const picks = [take(board, chooser, "p"), take(board, chooser, "p")];
  assert.deepEqual(picks.map((p) => p?.index).sort(), [1, 4]);
  // Nothing else it holds is missing or in flight elsewhere.
  assert.equal(chooser.next("p"), undefined);
  assert.equal(chooser.next("unknown"), undefined);
});

Deno.test("Default strategy does not duplicate chunks in flight until endgame", () => {
  const board = new ChunkBoard(new Uint8Array(3));
  const chooser = rarestFirst({ maxDuplicates: 2 }).choose(board);
  chooser.setSource("a", null);
  chooser.setSource("b", null);
  chooser.setSource("c", null);
  assert.deepEqual(take(board, chooser, "a"), { index: 0, duplicate: false });
  assert.deepEqual(take(board, chooser, "b"), { index: 1, duplicate: false });
  assert.deepEqual(take(board, chooser, "a"), { index: 2, duplicate: false });
  // Endgame: nothing missing, so c helps with chunks in flight elsewhere,
  // never one it is already fetching, and at most two sources per chunk.
  assert.deepEqual(take(board, chooser, "c"), { index: 0, duplicate: true });
  assert.deepEqual(take(board, chooser, "c"), { index: 1, duplicate: true });
  assert.deepEqual(take(board, chooser, "b"), { index: 2, duplicate: true });
  assert.equal(chooser.next("b"), undefined);
  // A completed chunk names its fetchers; a released one is asked again.
  assert.deepEqual(board.complete(0)?.sort(), ["a", "c"]);
  board.release(1, "b");
  board.release(1, "c");
  assert.deepEqual(take(board, chooser, "b"), { index: 1, duplicate: false });
});

Deno.test("A download with a strategy passed in uses it", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  await using seedDir = await tempDir();
  await using outDir = await tempDir();
  const source = join(seedDir.path, "picked.bin");
  await writeRandomFile(source, 1024 * 1024 + 123);
  await using _seeder = await startPeer({
    tracker: `127.0.0.1:${tracker.port}`,
    shared: seedDir.path,
    hostname: "127.0.0.1",
    chunkSize: 64 * 1024,
    heartbeatIntervalMs: 300,
  });
  const client = new TrackerClient(`127.0.0.1:${tracker.port}`);
  await pollUntil(
    async () => (await client.getPeers({ name: "picked.bin" })).length > 0,
    "the tracker lists the seeder's file",
  );
  const picks: number[] = [];
  const recording: DownloadStrategy = {
    choose(board) {
      const inner = defaultStrategy.choose(board);
      return {
        setSource: (key, chunks) => inner.setSource(key, chunks),
        addChunk: (key, index) => inner.addChunk(key, index),
        removeSource: (key) => inner.removeSource(key),
        next(key) {
          const index = inner.next(key);
          if (index !== undefined) picks.push(index);
          return index;
        },
      };
    },
  };
  const result = await download("picked.bin", {
    tracker: `127.0.0.1:${tracker.port}`,
    outDir: outDir.path,
    strategy: recording,
  });
  assert.equal(await sha256File(result.path), await sha256File(source));
  const chunks = Math.ceil((1024 * 1024 + 123) / (64 * 1024));
  assert.deepEqual(
    [...new Set(picks)].sort((a, b) => a - b),
    Array.from({ length: chunks }, (_, i) => i),
    "the recorded picks cover every chunk",
  );
});

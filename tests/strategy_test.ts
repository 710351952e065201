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

/** A seeded random source (mulberry32), so a test sees the same draws. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("Default strategy asks every missing chunk once, in a random order, when every source holds everything", () => {
  const board = new ChunkBoard(new Uint8Array([1, ...new Array(63).fill(0)]));
  const chooser = rarestFirst({ random: seeded(1) }).choose(board);
  chooser.setSource("a", null);
  chooser.setSource("b", null);
  const picks: number[] = [];
  for (let i = 0; i < 63; i++) {
    const pick = take(board, chooser, i % 2 ? "a" : "b");
    assert.equal(pick?.duplicate, false);
    picks.push(pick!.index);
  }
  assert.deepEqual(
    [...picks].sort((a, b) => a - b),
    Array.from({ length: 63 }, (_, i) => i + 1),
    "each missing chunk once, the verified one never",
  );
  assert.notDeepEqual(
    picks.slice(0, 8),
    [1, 2, 3, 4, 5, 6, 7, 8],
    "not in chunk order",
  );
});

Deno.test("Default strategy breaks ties randomly: two downloaders of one seeder start with different chunks", () => {
  const random = seeded(42);
  const trials = 1000;
  let sameFirst = 0;
  let sameFirstFour = 0;
  for (let trial = 0; trial < trials; trial++) {
    const firsts = ["x", "y"].map(() => {
      const board = new ChunkBoard(new Uint8Array(64));
      const chooser = rarestFirst({ random }).choose(board);
      chooser.setSource("seed", null);
      return Array.from({ length: 4 }, () => take(board, chooser, "seed")!);
    });
    const [x, y] = firsts.map((picks) => picks.map((p) => p.index));
    if (x![0] === y![0]) sameFirst++;
    if (x!.some((i) => y!.includes(i))) sameFirstFour++;
  }
  // Uniform picks collide on the first chunk 1 time in 64 (about 16 in
  // 1000) and share one of four in about 1 - (60/64)^4 ≈ 23 %.
  assert.ok(sameFirst < 50, `${sameFirst} of ${trials} first picks equal`);
  assert.ok(
    sameFirstFour < 400,
    `${sameFirstFour} of ${trials} first four picks overlap`,
  );
});

Deno.test("Default strategy asks for the rarest chunk first", () => {
  const board = new ChunkBoard(new Uint8Array(8));
  const chooser = rarestFirst({ random: seeded(7) }).choose(board);
  chooser.setSource("seed", null);
  chooser.setSource("x", bits(8, [0, 1, 2, 4, 5, 6, 7]));
  chooser.setSource("y", bits(8, [0, 1, 2, 5, 6, 7]));
  // Chunk 3 only the seed holds, chunk 4 the seed and x, the rest all three.
  assert.equal(take(board, chooser, "seed")?.index, 3);
  assert.equal(take(board, chooser, "seed")?.index, 4);
  assert.ok([0, 1, 2, 5, 6, 7].includes(take(board, chooser, "seed")!.index));
});

Deno.test("Default strategy picks the rarest chunk whatever the random draws", () => {
  for (let seed = 0; seed < 200; seed++) {
    const board = new ChunkBoard(new Uint8Array(16));
    const chooser = rarestFirst({ random: seeded(seed) }).choose(board);
    chooser.setSource("seed", null);
    const common = Array.from({ length: 16 }, (_, i) => i).filter((i) =>
      i !== 11
    );
    chooser.setSource("x", bits(16, common));
    chooser.setSource("y", bits(16, common));
    assert.equal(chooser.next("seed"), 11, `seed ${seed}`);
  }
});

Deno.test("Default strategy counts chunks a source announces after its map", () => {
  const board = new ChunkBoard(new Uint8Array(4));
  const chooser = rarestFirst({ random: seeded(3) }).choose(board);
  chooser.setSource("seed", null);
  chooser.setSource("x", bits(4, [0, 2, 3]));
  chooser.setSource("y", bits(4, [0, 1, 3]));
  // Chunks 1 and 2 are the rarest until x announces chunk 1; then chunk 2
  // alone is.
  chooser.addChunk("x", 1);
  assert.equal(chooser.next("seed"), 2);
  // A partial source is asked for what it announced, once it announced it.
  chooser.setSource("z", bits(4, []));
  assert.equal(chooser.next("z"), undefined);
  chooser.addChunk("z", 3);
  assert.equal(take(board, chooser, "z")?.index, 3);
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
  // Chunk 0 from a, 1 from b, 2 from a (the random order asked for here).
  board.request(0, "a");
  board.request(1, "b");
  board.request(2, "a");
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

Deno.test("Default strategy finds a released chunk whatever the random draws", () => {
  for (let seed = 0; seed < 500; seed++) {
    const board = new ChunkBoard(new Uint8Array(3));
    const chooser = rarestFirst({ random: seeded(seed) }).choose(board);
    chooser.setSource("a", null);
    chooser.setSource("b", null);
    board.request(0, "a");
    board.request(1, "b");
    board.request(2, "a");
    assert.equal(take(board, chooser, "b")?.duplicate, true);
    board.complete(0);
    board.release(1, "b");
    assert.deepEqual(take(board, chooser, "b"), {
      index: 1,
      duplicate: false,
    }, `seed ${seed}`);
  }
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

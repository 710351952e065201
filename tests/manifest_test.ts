/**
 * Tests of content identity: chunk hashing against an independent
 * computation, stable content ids, manifest validation and chunk sizing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash, randomFillSync } from "node:crypto";
import {
  chunkCount,
  chunkLength,
  contentId,
  DEFAULT_CHUNK_SIZE,
  effectiveChunkSize,
  hashFile,
  type Manifest,
  MAX_CHUNKS,
  MIN_CHUNK_SIZE,
  validateManifest,
} from "../lib/content/manifest.ts";
import { MAX_CHUNK_SIZE, ProtocolError } from "../lib/net/wire.ts";

/** The content id as the module doc defines it, computed independently. */
function expectedId(size: number, chunkSize: number, chunks: Uint8Array[]) {
  const hash = createHash("sha256");
  hash.update(
    new TextEncoder().encode(`shoal-manifest-v1\n${size}\n${chunkSize}\n`),
  );
  for (const chunk of chunks) {
    hash.update(createHash("sha256").update(chunk).digest());
  }
  return hash.digest("hex");
}

function splitChunks(data: Uint8Array, chunkSize: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    chunks.push(data.subarray(offset, offset + chunkSize));
  }
  return chunks;
}

async function tempFileWith(
  data: Uint8Array,
): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempFile({ prefix: "shoal_manifest_" });
  await Deno.writeFile(path, data);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path) };
}

Deno.test("hashFile hashes each chunk of a multi-chunk file like node:crypto does", async () => {
  // Spans more than one 1 MiB read block, with a short last chunk.
  const chunkSize = 4096;
  const data = randomFillSync(new Uint8Array(2 * 1024 * 1024 + 3 * 4096 + 123));
  await using file = await tempFileWith(data);
  const manifest = await hashFile(file.path, "data.bin", { chunkSize });
  const chunks = splitChunks(data, chunkSize);
  assert.equal(manifest.size, data.length);
  assert.equal(manifest.chunkSize, chunkSize);
  assert.equal(manifest.name, "data.bin");
  assert.equal(manifest.hashes.length, chunks.length);
  assert.equal(chunks.at(-1)!.length, 123);
  chunks.forEach((chunk, i) => {
    assert.equal(
      manifest.hashes[i],
      createHash("sha256").update(chunk).digest("hex"),
      `chunk ${i}`,
    );
  });
  assert.equal(manifest.id, expectedId(data.length, chunkSize, chunks));
  assert.deepEqual(validateManifest(manifest, manifest.id), manifest);
});

Deno.test("hashFile uses 1 MiB chunks by default", async () => {
  const data = randomFillSync(new Uint8Array(DEFAULT_CHUNK_SIZE * 2 + 1));
  await using file = await tempFileWith(data);
  const manifest = await hashFile(file.path, "x");
  assert.equal(manifest.chunkSize, DEFAULT_CHUNK_SIZE);
  const chunks = splitChunks(data, DEFAULT_CHUNK_SIZE);
  assert.deepEqual(
    manifest.hashes,
    chunks.map((c) => createHash("sha256").update(c).digest("hex")),
  );
  assert.equal(
    manifest.id,
    expectedId(data.length, DEFAULT_CHUNK_SIZE, chunks),
  );
});

Deno.test("hashFile gives an empty file no chunks and a valid manifest", async () => {
  await using file = await tempFileWith(new Uint8Array());
  const manifest = await hashFile(file.path, "empty");
  assert.equal(manifest.size, 0);
  assert.deepEqual(manifest.hashes, []);
  assert.equal(manifest.id, expectedId(0, DEFAULT_CHUNK_SIZE, []));
  validateManifest(manifest, manifest.id);
});

Deno.test("hashFile gives identical content the same id under any name", async () => {
  const data = randomFillSync(new Uint8Array(10_000));
  await using a = await tempFileWith(data);
  await using b = await tempFileWith(data);
  const first = await hashFile(a.path, "one.bin", { chunkSize: 4096 });
  const second = await hashFile(b.path, "two.bin", { chunkSize: 4096 });
  assert.equal(first.id, second.id);
  data[5000] = data[5000]! ^ 1;
  await Deno.writeFile(b.path, data);
  const changed = await hashFile(b.path, "two.bin", { chunkSize: 4096 });
  assert.notEqual(changed.id, first.id);
  assert.deepEqual(changed.hashes.filter((h, i) => h !== first.hashes[i]), [
    changed.hashes[1],
  ]);
});

Deno.test("contentId is stable and depends on size, chunk size and every hash", () => {
  const hashes = ["00".repeat(32), "ff".repeat(32)];
  const id = contentId(5000, 4096, hashes);
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.equal(contentId(5000, 4096, [...hashes]), id);
  // A pinned value: the id is part of the protocol and must never drift.
  assert.equal(
    id,
    createHash("sha256")
      .update("shoal-manifest-v1\n5000\n4096\n")
      .update(new Uint8Array(32))
      .update(new Uint8Array(32).fill(0xff))
      .digest("hex"),
  );
  assert.notEqual(contentId(5001, 4096, hashes), id);
  assert.notEqual(contentId(5000, 8192, hashes), id);
  assert.notEqual(contentId(5000, 4096, [hashes[1]!, hashes[0]!]), id);
});

function sampleManifest(): Manifest {
  const hashes = [
    "a1".repeat(32),
    "b2".repeat(32),
    "c3".repeat(32),
  ];
  const size = 2 * 4096 + 10;
  return {
    id: contentId(size, 4096, hashes),
    name: "docs/sample.bin",
    size,
    chunkSize: 4096,
    hashes,
  };
}

function assertRejected(
  value: unknown,
  pattern: RegExp,
  requested?: string,
): void {
  assert.throws(
    () => validateManifest(value, requested),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError, `got ${error}`);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

Deno.test("validateManifest accepts a consistent manifest", () => {
  const manifest = sampleManifest();
  assert.deepEqual(validateManifest(manifest), manifest);
  assert.deepEqual(validateManifest(manifest, manifest.id), manifest);
});

Deno.test("validateManifest rejects tampered hashes", () => {
  const manifest = sampleManifest();
  const tampered = [...manifest.hashes];
  tampered[1] = "44".repeat(32);
  assertRejected({ ...manifest, hashes: tampered }, /its hashes give id/);
  assertRejected(
    { ...manifest, hashes: [...manifest.hashes].reverse() },
    /its hashes give id/,
  );
  assertRejected(
    { ...manifest, hashes: manifest.hashes.map((h) => h.toUpperCase()) },
    /chunk hash is not 64 hex digits/,
  );
  assertRejected(
    { ...manifest, hashes: [...manifest.hashes.slice(0, 2), "zz".repeat(32)] },
    /chunk hash is not 64 hex digits/,
  );
  assertRejected({ ...manifest, hashes: [1, 2, 3] }, /chunk hash/);
});

Deno.test("validateManifest rejects a wrong number of hashes", () => {
  const manifest = sampleManifest();
  assertRejected(
    { ...manifest, hashes: manifest.hashes.slice(0, 2) },
    /expected 3 chunk hashes/,
  );
  assertRejected(
    { ...manifest, hashes: [...manifest.hashes, "55".repeat(32)] },
    /expected 3 chunk hashes/,
  );
  assertRejected({ ...manifest, hashes: "not a list" }, /expected 3/);
  // A size that claims more chunks than the list has.
  assertRejected({ ...manifest, size: 3 * 4096 + 1 }, /expected 4 chunk/);
});

Deno.test("validateManifest rejects chunk sizes out of range", () => {
  const manifest = sampleManifest();
  for (
    const chunkSize of [
      MIN_CHUNK_SIZE - 1,
      MAX_CHUNK_SIZE + 1,
      0,
      -4096,
      4096.5,
      "4096",
      null,
    ]
  ) {
    assertRejected({ ...manifest, chunkSize }, /chunkSize .* is not between/);
  }
});

Deno.test("validateManifest rejects bad sizes, names and too many chunks", () => {
  const manifest = sampleManifest();
  assertRejected({ ...manifest, size: -1 }, /size -1/);
  assertRejected({ ...manifest, size: 1.5 }, /size 1.5/);
  assertRejected({ ...manifest, size: 2 ** 53 }, /not a non-negative integer/);
  assertRejected({ ...manifest, name: "../escape" }, /Cannot accept name/);
  assertRejected({ ...manifest, name: undefined }, /Cannot accept name/);
  assertRejected(
    { ...manifest, size: (MAX_CHUNKS + 1) * MIN_CHUNK_SIZE, chunkSize: 4096 },
    /131073 chunks exceed/,
  );
  assertRejected(null, /not an object/);
  assertRejected("manifest", /not an object/);
});

Deno.test("validateManifest rejects an id that does not match", () => {
  const manifest = sampleManifest();
  const other = "0".repeat(64);
  // The claimed id is consistent, but it is not the one that was asked for.
  assertRejected(manifest, /not the requested 000000000000/, other);
  // The claimed id does not match the hashes.
  assertRejected({ ...manifest, id: other }, /its hashes give id/);
  assertRejected({ ...manifest, id: manifest.id.toUpperCase() }, /id is not/);
  assertRejected({ ...manifest, id: undefined }, /id is not/);
});

Deno.test("effectiveChunkSize doubles the chunk size for huge files", () => {
  assert.equal(effectiveChunkSize(0, 4096), 4096);
  assert.equal(effectiveChunkSize(MAX_CHUNKS * 4096, 4096), 4096);
  assert.equal(effectiveChunkSize(MAX_CHUNKS * 4096 + 1, 4096), 8192);
  // 1 TiB at 1 MiB would be 2^20 chunks; 8 MiB gives exactly 2^17.
  assert.equal(effectiveChunkSize(2 ** 40, DEFAULT_CHUNK_SIZE), 8 * 2 ** 20);
  // Never beyond the largest chunk a frame can carry.
  assert.equal(
    effectiveChunkSize(Number.MAX_SAFE_INTEGER, 4096),
    MAX_CHUNK_SIZE,
  );
  for (const size of [1, 2 ** 30, 2 ** 38, 2 ** 41]) {
    const chunkSize = effectiveChunkSize(size, DEFAULT_CHUNK_SIZE);
    assert.ok(chunkCount(size, chunkSize) <= MAX_CHUNKS, `size ${size}`);
  }
});

Deno.test("chunkCount and chunkLength cover the file exactly", () => {
  assert.equal(chunkCount(0, 4096), 0);
  assert.equal(chunkCount(4096, 4096), 1);
  assert.equal(chunkCount(4097, 4096), 2);
  const m = { size: 10_000, chunkSize: 4096 };
  const lengths = Array.from(
    { length: chunkCount(m.size, m.chunkSize) },
    (_, i) => chunkLength(m, i),
  );
  assert.deepEqual(lengths, [4096, 4096, 1808]);
});

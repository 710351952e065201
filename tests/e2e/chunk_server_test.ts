/**
 * The chunk server on real sockets: long-poll `have` answered as soon as a
 * chunk verifies (or with `added: []` after `waitMs`), chunk requests not
 * held behind a poll, polls released when the connection closes, `hello`,
 * and `choked` answers from the upload slots.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConnectionServer } from "../../lib/net/_server.ts";
import { ChunkServer } from "../../lib/peer/chunk_server.ts";
import { ChunkNews } from "../../lib/peer/_chunk_news.ts";
import { UploadSlots } from "../../lib/peer/upload_slots.ts";
import { ShareIndex } from "../../lib/share/share.ts";
import { packBitfield } from "../../lib/download/scheduler.ts";
import type { ActiveDownload } from "../../lib/download/transfer.ts";
import { RemoteError } from "../../lib/errors.ts";
import { peerReplies } from "../../lib/protocol/messages.ts";
import { RpcClient } from "../../lib/protocol/rpc.ts";
import { pollUntil, tempDir, writeRandomFile } from "../_helpers.ts";

const CHUNK = 64 * 1024;
const CHUNKS = 4;

/** A download in progress over a `.part` file, with its chunk feed. */
async function fakeDownload(dir: string) {
  const bytes = await writeRandomFile(join(dir, "x.part"), CHUNK * CHUNKS);
  const hashes: string[] = [];
  for (let i = 0; i < CHUNKS; i++) {
    const digest = await crypto.subtle.digest(
      "SHA-256",
      bytes.subarray(i * CHUNK, (i + 1) * CHUNK),
    );
    hashes.push(
      Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0"))
        .join(""),
    );
  }
  const have = new Uint8Array(CHUNKS);
  have[0] = 1;
  const manifest = {
    id: "b".repeat(64),
    name: "x.bin",
    size: CHUNK * CHUNKS,
    chunkSize: CHUNK,
    hashes,
  };
  const active: ActiveDownload = {
    manifest,
    name: "x.bin",
    partPath: join(dir, "x.part"),
    has: (i) => have[i] === 1,
    bitfield: () => packBitfield(have),
  };
  const news = new ChunkNews(100);
  return {
    active,
    news,
    verify(index: number) {
      have[index] = 1;
      news.verified(index);
    },
  };
}

async function startServer(
  dir: string,
  extra: Partial<ConstructorParameters<typeof ChunkServer>[0]> = {},
) {
  const shared = join(dir, "shared");
  await Deno.mkdir(shared);
  const shares = await ShareIndex.open({
    root: shared,
    stateDir: join(dir, "state"),
    chunkSize: CHUNK,
  });
  const download = await fakeDownload(dir);
  const chunks = new ChunkServer({
    shares,
    partial: (id) =>
      id === download.active.manifest.id ? download.active : undefined,
    news: (id) =>
      id === download.active.manifest.id ? download.news : undefined,
    ...extra,
  });
  const server = ConnectionServer.listen(
    { hostname: "127.0.0.1", port: 0 },
    { framed: chunks.serve, legacy: () => Promise.resolve(), error: () => {} },
  );
  server.start();
  return {
    address: `127.0.0.1:${server.port}`,
    shares,
    chunks,
    download,
    id: download.active.manifest.id,
    [Symbol.asyncDispose]: () => server.close(),
  };
}

Deno.test("A long-poll have answers as soon as a chunk verifies, with the chunks added", async () => {
  await using dir = await tempDir();
  await using peer = await startServer(dir.path);
  await using client = await RpcClient.connect(peer.address);
  const first = await client.ask(peerReplies, { type: "have", id: peer.id });
  assert.equal(first.complete, false);
  assert.equal(first.version, 100);
  const started = performance.now();
  const poll = client.ask(peerReplies, {
    type: "have",
    id: peer.id,
    after: 100,
    waitMs: 5000,
  });
  await pollUntil(() => peer.download.news.waiting === 1, "the poll to wait");
  // A chunk request on the same connection is not held behind the poll.
  const chunk = await client.ask(peerReplies, {
    type: "chunk",
    id: peer.id,
    index: 0,
  });
  assert.equal(chunk.length, CHUNK);
  peer.download.verify(2);
  const reply = await poll;
  assert.deepEqual(reply, {
    type: "have",
    complete: false,
    added: [2],
    version: 101,
  });
  assert.ok(performance.now() - started < 4000, "answered before waitMs");
});

Deno.test("A long-poll have answers added: [] after waitMs, and the bitfield for a version it does not know", async () => {
  await using dir = await tempDir();
  await using peer = await startServer(dir.path);
  await using client = await RpcClient.connect(peer.address);
  const started = performance.now();
  const reply = await client.ask(peerReplies, {
    type: "have",
    id: peer.id,
    after: 100,
    waitMs: 150,
  });
  assert.ok(performance.now() - started >= 140, "waited");
  assert.deepEqual(reply, {
    type: "have",
    complete: false,
    added: [],
    version: 100,
  });
  const ahead = await client.ask(peerReplies, {
    type: "have",
    id: peer.id,
    after: 7000,
    waitMs: 5000,
  });
  assert.ok("bitfield" in ahead, "a full bitfield at once");
});

Deno.test("Long polls are released when their connection closes", async () => {
  await using dir = await tempDir();
  await using peer = await startServer(dir.path);
  const client = await RpcClient.connect(peer.address);
  const polls = [1, 2].map(() =>
    client.ask(peerReplies, {
      type: "have",
      id: peer.id,
      after: 100,
      waitMs: 5000,
    }).catch(() => "closed")
  );
  await pollUntil(() => peer.download.news.waiting === 2, "both polls wait");
  await client.close();
  assert.deepEqual(await Promise.all(polls), ["closed", "closed"]);
  await pollUntil(() => peer.download.news.waiting === 0, "polls released");
});

Deno.test("A hello with a port is answered ok and remembered; a bad port is a bad request", async () => {
  await using dir = await tempDir();
  await using peer = await startServer(dir.path);
  await using client = await RpcClient.connect(peer.address);
  assert.deepEqual(
    await client.ask(peerReplies, { type: "hello", port: 4321 }),
    { type: "ok" },
  );
  // The connection's remote address, as the server sees it.
  await client.ask(peerReplies, { type: "chunk", id: peer.id, index: 0 });
  const [upload] = peer.chunks.uploads.active();
  assert.equal(peer.chunks.helloAddress(upload!.remote), "127.0.0.1|4321");
  await assert.rejects(
    client.ask(peerReplies, { type: "hello", port: 70000 }),
    (e: unknown) => e instanceof RemoteError && e.code === "bad_request",
  );
});

Deno.test("With upload slots full, a chunk request is answered choked with retryAfterMs", async () => {
  await using dir = await tempDir();
  await using peer = await startServer(dir.path, {
    slots: new UploadSlots({ slots: 1, maxRetryAfterMs: 800 }),
  });
  await using first = await RpcClient.connect(peer.address);
  await using second = await RpcClient.connect(peer.address);
  const ask = (c: RpcClient) =>
    c.ask(peerReplies, { type: "chunk", id: peer.id, index: 0 });
  assert.equal((await ask(first)).length, CHUNK);
  const error = await ask(second).catch((e) => e);
  assert.ok(
    error instanceof RemoteError && error.code === "choked",
    `${error}`,
  );
  assert.ok(
    error.retryAfterMs !== undefined && error.retryAfterMs > 0 &&
      error.retryAfterMs <= 800,
    `retryAfterMs ${error.retryAfterMs}`,
  );
  assert.equal(
    (await ask(first)).length,
    CHUNK,
    "the slot holder still served",
  );
});

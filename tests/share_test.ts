/**
 * Tests of the shared-directory index and its watcher: ignore rules, the hash
 * cache in the state directory, incremental updates, stability before
 * announcing, and incremental announces to a real tracker.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RemoteError } from "../lib/errors.ts";
import { RpcClient } from "../lib/protocol/rpc.ts";
import { IgnoreRules } from "../lib/share/ignore.ts";
import { startPeer } from "../lib/peer/node.ts";
import {
  diffAnnouncements,
  type ScanProgress,
  ShareIndex,
} from "../lib/share/share.ts";
import { TrackerClient } from "../lib/tracker/client.ts";
import { startTracker } from "../lib/tracker/server.ts";
import { ShareWatcher } from "../lib/share/watch.ts";
import { pollUntil, tempDir } from "./_helpers.ts";

const encoder = new TextEncoder();

async function write(root: string, name: string, text: string): Promise<void> {
  const path = join(root, name);
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(path, text);
}

function names(index: ShareIndex): string[] {
  return index.files().map((f) => f.name).sort();
}

Deno.test("ShareIndex never shares partial downloads, the state folder or hidden files by default", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await write(root, "keep.txt", "keep");
  await write(root, "sub/keep.bin", "keep");
  await write(root, "movie.mkv.part", "partial");
  await write(root, "movie.mkv.part.state", "{}");
  await write(root, ".env", "secret");
  await write(root, ".git/config", "hidden dir");
  await write(root, "sub/.hidden", "hidden");
  await write(root, ".shoal/other.txt", "state");
  const index = await ShareIndex.open({ root });
  assert.deepEqual(names(index), ["keep.txt", "sub/keep.bin"]);

  const withHidden = await ShareIndex.open({ root, includeHidden: true });
  assert.deepEqual(names(withHidden), [
    ".env",
    ".git/config",
    "keep.txt",
    "sub/.hidden",
    "sub/keep.bin",
  ]);
});

Deno.test("ShareIndex applies gitignore-style patterns from .shoalignore", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await write(root, ".shoalignore", "*.log\nbuild/\n!important.log\n");
  await write(root, "app.log", "x");
  await write(root, "important.log", "x");
  await write(root, "build/out.bin", "x");
  await write(root, "src/build.txt", "x");
  const index = await ShareIndex.open({ root, includeHidden: true });
  assert.deepEqual(names(index), ["important.log", "src/build.txt"]);
});

Deno.test("IgnoreRules match directory-only patterns only for directories", () => {
  const rules = new IgnoreRules(["cache/"]);
  assert.equal(rules.ignores("cache", true), true);
  assert.equal(rules.ignores("cache", false), false);
  assert.equal(rules.ignores("a/cache/x.bin", false), true);
});

Deno.test("ShareIndex reuses its hash cache from the state directory on reopen", async () => {
  await using dir = await tempDir();
  await using state = await tempDir();
  const root = dir.path;
  for (let i = 0; i < 5; i++) await write(root, `f${i}.txt`, `file ${i}`);
  const first: ScanProgress[] = [];
  const cold = await ShareIndex.open({
    root,
    stateDir: state.path,
    hashConcurrency: 3,
    onProgress: (p) => first.push(p),
  });
  assert.equal(first.at(-1)?.files, 5);
  assert.equal(first.at(-1)?.totalFiles, 5);
  assert.equal(first.at(-1)?.bytes, first.at(-1)?.totalBytes);
  await Deno.stat(join(state.path, "hashes.json"));

  const second: ScanProgress[] = [];
  const warm = await ShareIndex.open({
    root,
    stateDir: state.path,
    onProgress: (p) => second.push(p),
  });
  assert.deepEqual(second, [], "a warm open must not hash anything");
  assert.deepEqual(warm.announcements(), cold.announcements());

  // A file changed while the peer was stopped is hashed again.
  await Deno.writeTextFile(join(root, "f1.txt"), "changed contents");
  const third: ScanProgress[] = [];
  const after = await ShareIndex.open({
    root,
    stateDir: state.path,
    onProgress: (p) => third.push(p),
  });
  assert.equal(third.at(-1)?.totalFiles, 1);
  assert.notEqual(after.byName("f1.txt")?.id, cold.byName("f1.txt")?.id);
});

Deno.test("ShareIndex.update adds, changes and removes files and folders", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await write(root, "a.txt", "a");
  await write(root, "folder/x.txt", "x");
  await write(root, "folder/deep/y.txt", "y");
  const index = await ShareIndex.open({ root });
  const oldId = index.byName("a.txt")!.id;

  await write(root, "b.txt", "b");
  await Deno.writeTextFile(join(root, "a.txt"), "a, changed");
  let result = await index.update([join(root, "b.txt"), join(root, "a.txt")]);
  assert.equal(result.changed, true);
  assert.notEqual(index.byName("a.txt")!.id, oldId);
  assert.equal(index.byId(oldId), undefined, "the old id is no longer served");
  assert.ok(index.byName("b.txt"));

  await Deno.remove(join(root, "folder"), { recursive: true });
  result = await index.update([join(root, "folder")]);
  assert.equal(result.changed, true);
  assert.deepEqual(names(index), ["a.txt", "b.txt"]);

  await Deno.rename(join(root, "b.txt"), join(root, "c.txt"));
  await index.update([join(root, "b.txt"), join(root, "c.txt")]);
  assert.deepEqual(names(index), ["a.txt", "c.txt"]);

  result = await index.update([join(root, "c.txt")]);
  assert.equal(result.changed, false, "an unchanged file is not news");
});

Deno.test("ShareIndex.update withdraws a changing file and reports it pending", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await write(root, "growing.bin", "start");
  const index = await ShareIndex.open({ root });
  await Deno.writeTextFile(join(root, "growing.bin"), "start and more");
  const result = await index.update(
    [join(root, "growing.bin")],
    () => false,
  );
  assert.deepEqual(result.pending, [join(root, "growing.bin")]);
  assert.equal(index.byName("growing.bin"), undefined);
  await index.update([join(root, "growing.bin")], () => true);
  assert.equal(index.byName("growing.bin")?.size, 14);
});

Deno.test("ShareWatcher announces a file written in pieces only once it stops changing", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  const index = await ShareIndex.open({ root });
  // Pieces come every 50 ms; only a pause 60 times as long (a starved
  // machine) would make the half-written file look finished.
  await using watcher = ShareWatcher.start(index, {
    debounceMs: 20,
    stableMs: 3000,
  });
  assert.equal(watcher.active, true);
  const path = join(root, "big.bin");
  const piece = new Uint8Array(64 * 1024).fill(7);
  {
    using file = await Deno.open(path, { write: true, create: true });
    for (let i = 0; i < 8; i++) {
      await file.write(piece);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(
        index.byName("big.bin"),
        undefined,
        `announced after piece ${i + 1} of 8 while still being written`,
      );
    }
  }
  const file = await pollUntil(
    () => index.byName("big.bin"),
    "big.bin was never indexed after it stopped changing",
    { timeoutMs: 20_000 },
  );
  assert.equal(file.size, 8 * piece.length);
});

Deno.test("ShareWatcher sees new, deleted and ignored files", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await write(root, "old.txt", "old");
  const index = await ShareIndex.open({ root });
  await using watcher = ShareWatcher.start(index, {
    debounceMs: 20,
    stableMs: 50,
  });
  await write(root, "nested/new.txt", "new");
  await write(root, "nested/new.txt.part", "partial");
  await write(root, ".hidden.txt", "hidden");
  await Deno.remove(join(root, "old.txt"));
  await pollUntil(
    () => names(index).join() === "nested/new.txt" ? true : undefined,
    `expected only nested/new.txt, have ${names(index)}`,
    { timeoutMs: 20_000 },
  );
  await watcher.flush();
  assert.deepEqual(names(index), ["nested/new.txt"]);

  // Editing .shoalignore while running applies the new rules at once.
  await write(root, ".shoalignore", "nested/\n");
  await pollUntil(
    () => names(index).length === 0 ? true : undefined,
    `a folder ignored by a new .shoalignore is still shared: ${names(index)}`,
    { timeoutMs: 20_000 },
  );
});

Deno.test("diffAnnouncements reports changed ids as added", () => {
  const before = new Map([
    ["a", { name: "a", id: "a".repeat(64), size: 1 }],
  ]);
  const delta = diffAnnouncements(before, [
    { name: "a", id: "b".repeat(64), size: 1 },
  ]);
  assert.deepEqual(delta.added.map((f) => f.id), ["b".repeat(64)]);
  assert.deepEqual(delta.removed, []);
});

Deno.test("Tracker applies numbered incremental announces and asks for a resync after a gap", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
  });
  const client = new TrackerClient(tracker.address);
  const registration = await client.register(40001, [
    { name: "a.txt", id: "a".repeat(64), size: 1 },
  ]);
  assert.equal(registration.deltas, true);
  await client.announceChanges(40001, 1, [
    { name: "b.txt", id: "b".repeat(64), size: 2 },
  ], ["a.txt"]);
  assert.deepEqual((await client.list()).map((f) => f.name), ["b.txt"]);

  await assert.rejects(
    client.announceChanges(40001, 3, [], ["b.txt"]),
    (error: unknown) => error instanceof RemoteError && error.code === "resync",
  );
  assert.deepEqual(
    (await client.list()).map((f) => f.name),
    ["b.txt"],
    "a rejected announce changes nothing",
  );
  await client.heartbeat(40001, [
    { name: "c.txt", id: "c".repeat(64), size: 3 },
  ]);
  await client.announceChanges(40001, 1, [], ["c.txt"]);
  assert.deepEqual(await client.list(), []);

  // Malformed deltas are refused with a clear message.
  await using rpc = await RpcClient.connect(tracker.address);
  await assert.rejects(
    rpc.call({ type: "heartbeat", port: 40001, added: [] }, "ok"),
    /seq/,
  );
  await assert.rejects(
    rpc.call(
      { type: "heartbeat", port: 40001, seq: 2, removed: ["../x"] },
      "ok",
    ),
    /name/,
  );
});

Deno.test("A running peer announces a file added to its folder without a heartbeat", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  await using peer = await startPeer({
    tracker: tracker.address,
    shared: root,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 60_000,
    watchDebounceMs: 20,
    stableMs: 100,
  });
  await peer.refresh();
  const client = new TrackerClient(tracker.address);
  await Deno.writeFile(join(root, "later.txt"), encoder.encode("later"));
  // Deadlines well under the 60 s heartbeat: only the watcher can meet them.
  await pollUntil(
    async () =>
      (await client.getPeers({ name: "later.txt" })).length > 0
        ? true
        : undefined,
    "later.txt never reached the tracker",
    { timeoutMs: 20_000 },
  );
  await Deno.remove(join(root, "later.txt"));
  await pollUntil(
    async () => (await client.list()).length === 0 ? true : undefined,
    "later.txt was never withdrawn",
    { timeoutMs: 20_000 },
  );
});

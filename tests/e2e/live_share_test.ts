/**
 * End-to-end tests of live shared folders: the real tracker and peer CLIs,
 * with files copied in, changed, deleted and written slowly while the peer
 * runs, and heartbeats too slow to be what announces them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ListedFile } from "../../lib/protocol/messages.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import {
  assertOneLineError,
  delay,
  pollUntil,
  runPeer,
  sha256File,
  spawnPeer,
  spawnTracker,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

/** Heartbeats this slow never fire during a test: announces come from the watcher. */
const SLOW = ["--heartbeat", "60s"];

async function listed(
  client: TrackerClient,
  name: string,
): Promise<ListedFile | undefined> {
  return (await client.list()).find((f) => f.name === name);
}

Deno.test("A file copied into a running peer's folder becomes downloadable, changes id when modified and leaves the list when deleted", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using shared = await tempDir();
  await using elsewhere = await tempDir();
  await using out = await tempDir();
  await using _peer = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    args: [...SLOW, "--settle", "200ms"],
  });
  const client = new TrackerClient(tracker.address);
  assert.deepEqual(await client.list(), []);

  const source = join(elsewhere.path, "report.bin");
  await writeRandomFile(source, 3 * 1024 * 1024 + 17);
  await Deno.copyFile(source, join(shared.path, "report.bin"));
  const first = await pollUntil(
    () => listed(client, "report.bin"),
    "report.bin copied into the shared folder never reached the tracker",
    { timeoutMs: 20_000 },
  );
  assert.equal(first.size, 3 * 1024 * 1024 + 17);

  const got = await runPeer(
    "download",
    "report.bin",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(got.code, 0, got.stderr);
  assert.equal(
    await sha256File(join(out.path, "report.bin")),
    await sha256File(source),
  );

  await Deno.writeTextFile(join(shared.path, "report.bin"), "rewritten");
  const second = await pollUntil(
    async () => {
      const file = await listed(client, "report.bin");
      return file && file.id !== first.id ? file : undefined;
    },
    "the modified report.bin never got a new id at the tracker",
    { timeoutMs: 20_000 },
  );
  assert.equal(second.size, 9);
  assert.equal(
    (await client.getPeers({ id: first.id! })).length,
    0,
    "the old content id is still announced",
  );
  const stale = await runPeer(
    "download",
    first.id!,
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.notEqual(stale.code, 0, "downloading the old content succeeded");
  assertOneLineError(stale, "a download of replaced content");

  await Deno.remove(join(shared.path, "report.bin"));
  await pollUntil(
    async () => (await client.list()).length === 0 ? true : undefined,
    "the deleted report.bin is still listed",
    { timeoutMs: 20_000 },
  );
});

Deno.test("A half-written large file is announced only when complete, and ignored files never appear", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using shared = await tempDir();
  await Deno.writeTextFile(join(shared.path, ".shoalignore"), "*.tmp\n");
  await using _peer = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    // Pieces come every 100 ms: only a 30 times longer pause (a starved
    // machine) would make the half-written file look finished.
    args: [...SLOW, "--settle", "3s"],
  });
  const client = new TrackerClient(tracker.address);

  await Deno.writeTextFile(join(shared.path, "draft.tmp"), "ignored pattern");
  await Deno.writeTextFile(join(shared.path, ".secret"), "hidden");
  await Deno.writeTextFile(join(shared.path, "movie.mkv.part"), "partial");
  await Deno.mkdir(join(shared.path, ".cache"));
  await Deno.writeTextFile(join(shared.path, ".cache", "x.bin"), "hidden dir");

  const piece = new Uint8Array(256 * 1024);
  const pieces = 12;
  {
    using file = await Deno.open(join(shared.path, "big.iso"), {
      write: true,
      create: true,
    });
    for (let i = 0; i < pieces; i++) {
      crypto.getRandomValues(piece.subarray(0, 65536));
      await file.write(piece);
      const early = await listed(client, "big.iso");
      assert.equal(
        early,
        undefined,
        `big.iso was announced after ${i + 1} of ${pieces} pieces`,
      );
      await delay(100);
    }
  }
  const done = await pollUntil(
    () => listed(client, "big.iso"),
    "big.iso was never announced after it was complete",
    { timeoutMs: 20_000 },
  );
  assert.equal(done.size, pieces * piece.length);
  assert.deepEqual(
    (await client.list()).map((f) => f.name),
    ["big.iso"],
    "an ignored file was announced",
  );
});

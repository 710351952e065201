/**
 * End-to-end file exchange: a tracker and two daemon peers as real
 * processes, one-shot `peer.ts list|peers|download`, and the interactive prompt.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ListedFile, PeerInfo } from "../../lib/protocol/messages.ts";
import {
  assertOneLineError,
  FIXTURES,
  runPeer,
  sha256,
  sha256File,
  spawnPeer,
  spawnTracker,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

const BIG_SIZE = 5 * 1024 * 1024 + 12_345; // Not a multiple of the chunk size.

Deno.test("Peers exchange files verified byte for byte through the CLI", async (t) => {
  await using tracker = await spawnTracker();
  await using dirA = await tempDir("shared1");
  await using dirB = await tempDir("shared2");
  const big = await writeRandomFile(join(dirA.path, "big.bin"), BIG_SIZE);
  await using peerA = await spawnPeer({
    tracker: tracker.address,
    shared: dirA.path,
    chunkSize: "256K",
  });
  await using peerB = await spawnPeer({
    tracker: tracker.address,
    shared: dirB.path,
    chunkSize: "256K",
  });
  assert.match(peerA.stdout, /serving 4 files/);
  assert.match(peerB.stdout, /serving 4 files/);

  const listJson = async (): Promise<ListedFile[]> => {
    const result = await runPeer(
      "list",
      "--json",
      "--tracker",
      tracker.address,
    );
    assert.equal(result.code, 0, result.stderr);
    const listed = JSON.parse(result.stdout);
    assert.equal(listed.version, 1);
    return listed.files;
  };

  await t.step(
    "list --json shows same content once, same name twice",
    async () => {
      const files = await listJson();
      const common = files.filter((f) => f.name === "common.txt");
      assert.equal(common.length, 1, JSON.stringify(files));
      assert.equal(common[0]!.holders, 2);
      const notes = files.filter((f) => f.name === "notes.txt");
      assert.equal(notes.length, 2, JSON.stringify(files));
      assert.notEqual(notes[0]!.id, notes[1]!.id);
      assert.deepEqual(notes.map((f) => f.holders), [1, 1]);
      const bigEntry = files.find((f) => f.name === "big.bin");
      assert.equal(bigEntry?.size, BIG_SIZE);
      assert.ok(files.some((f) => f.name === "docs/alpha.md"));
    },
  );

  await t.step("peers --json lists both holders of common.txt", async () => {
    const result = await runPeer(
      "peers",
      "common.txt",
      "--json",
      "--tracker",
      tracker.address,
    );
    assert.equal(result.code, 0, result.stderr);
    const peers: PeerInfo[] = JSON.parse(result.stdout).peers;
    assert.deepEqual(
      peers.map((p) => p.address).sort(),
      [peerA.address, peerB.address].sort(),
    );
    assert.ok(peers.every((p) => p.protocol === "shoal"));
    assert.equal(new Set(peers.map((p) => p.id)).size, 1);
  });

  await using out = await tempDir();

  await t.step(
    "download by name fetches a multi-chunk file intact",
    async () => {
      const result = await runPeer(
        "download",
        "big.bin",
        "--tracker",
        tracker.address,
        "--out",
        out.path,
      );
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Downloaded big\.bin .*verified/);
      assert.equal(
        await sha256File(join(out.path, "big.bin")),
        await sha256(big),
      );
    },
  );

  await t.step(
    "downloading again reports the file is already there",
    async () => {
      const result = await runPeer(
        "download",
        "big.bin",
        "--tracker",
        tracker.address,
        "--out",
        out.path,
      );
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Already have big\.bin/);
    },
  );

  await t.step(
    "download by content id fetches the other peer's file",
    async () => {
      const photo = (await listJson()).find((f) => f.name === "photo.bin");
      assert.ok(photo?.id, "photo.bin is listed with an id");
      const result = await runPeer(
        "download",
        photo.id,
        "--tracker",
        tracker.address,
        "--out",
        out.path,
      );
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(
        await Deno.readFile(join(out.path, "photo.bin")),
        await Deno.readFile(join(FIXTURES, "shared2", "photo.bin")),
      );
    },
  );

  await t.step(
    "a different existing file is kept unless --overwrite",
    async () => {
      const existing = join(out.path, "common.txt");
      await Deno.writeTextFile(existing, "my own common.txt\n");
      const refused = await runPeer(
        "download",
        "common.txt",
        "--tracker",
        tracker.address,
        "--out",
        out.path,
      );
      assert.equal(refused.code, 1, refused.stdout);
      assertOneLineError(refused, "a download over a different file");
      assert.match(refused.stderr, /already exists.*--overwrite/);
      assert.equal(await Deno.readTextFile(existing), "my own common.txt\n");

      const replaced = await runPeer(
        "download",
        "common.txt",
        "--overwrite",
        "--tracker",
        tracker.address,
        "--out",
        out.path,
      );
      assert.equal(replaced.code, 0, replaced.stderr);
      assert.equal(
        await Deno.readTextFile(existing),
        await Deno.readTextFile(join(FIXTURES, "shared1", "common.txt")),
      );
    },
  );

  await t.step(
    "an ambiguous name is refused; its content id works",
    async () => {
      const ambiguous = await runPeer(
        "download",
        "notes.txt",
        "--tracker",
        tracker.address,
        "--out",
        out.path,
      );
      assert.equal(ambiguous.code, 1, ambiguous.stdout);
      assertOneLineError(ambiguous, "an ambiguous name");
      assert.match(ambiguous.stderr, /2 different files have that name/);

      const expected = await Deno.readFile(
        join(FIXTURES, "shared2", "notes.txt"),
      );
      const entry = (await listJson()).find((f) =>
        f.name === "notes.txt" && f.size === expected.length
      );
      assert.ok(entry?.id, "peer two's notes.txt is listed");
      const byId = await runPeer(
        "download",
        entry.id,
        "--tracker",
        tracker.address,
        "--out",
        out.path,
      );
      assert.equal(byId.code, 0, byId.stderr);
      assert.deepEqual(
        await Deno.readFile(join(out.path, "notes.txt")),
        expected,
      );
    },
  );
});

Deno.test("The interactive prompt lists, downloads and reports status", async () => {
  await using tracker = await spawnTracker();
  await using source = await tempDir();
  const bytes = await writeRandomFile(
    join(source.path, "movie.bin"),
    1024 * 1024 + 7,
  );
  await using _seeder = await spawnPeer({
    tracker: tracker.address,
    shared: source.path,
    chunkSize: "256K",
  });
  await using mine = await tempDir();
  await using prompt = await spawnPeer({
    tracker: tracker.address,
    shared: mine.path,
    daemon: false,
  });
  await prompt.waitFor(/Type "help" for commands/);

  let from = prompt.lines.length;
  await prompt.writeLine("list");
  await prompt.waitFor(/^movie\.bin\s+1(\.0)? MiB\s+1\s+[0-9a-f]{16}$/, {
    from,
  });

  from = prompt.lines.length;
  await prompt.writeLine("download movie.bin");
  await prompt.waitFor(/^Downloaded movie\.bin .*verified/, { from });
  assert.deepEqual(await Deno.readFile(join(mine.path, "movie.bin")), bytes);

  from = prompt.lines.length;
  await prompt.writeLine("status");
  await prompt.waitFor(/^Address \S+; tracker connected; sharing 1 file$/, {
    from,
  });

  await prompt.writeLine("exit");
  const status = await prompt.exited();
  assert.equal(status.code, 0, prompt.stderr);
  assert.match(prompt.stdout, /Unregistered; bye\.$/);
});

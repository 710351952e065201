/**
 * Folder and glob downloads as a user types them: `peer.ts download docs/`
 * and `download '*.iso'` fetch every matching file, each verified, with one
 * overall progress line and a per-file summary, from the one-shot command
 * and from the prompt.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  exists,
  runPeer,
  spawnPeer,
  spawnTracker,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

Deno.test("download docs/ and '*.iso' fetch every matching file, verified", async () => {
  await using tracker = await spawnTracker();
  await using source = await tempDir();
  const put = async (name: string, size: number) => {
    await Deno.mkdir(join(source.path, name, ".."), { recursive: true });
    return await writeRandomFile(join(source.path, name), size);
  };
  const files = {
    "docs/a.txt": await put("docs/a.txt", 1000),
    "docs/sub/b.bin": await put("docs/sub/b.bin", 700 * 1024 + 3),
    "docs-old/x.txt": await put("docs-old/x.txt", 10),
    "isos/one.iso": await put("isos/one.iso", 300 * 1024),
    "two.iso": await put("two.iso", 5),
    "readme.txt": await put("readme.txt", 5),
  };
  await using _seeder = await spawnPeer({
    tracker: tracker.address,
    shared: source.path,
    chunkSize: "256K",
  });

  await using out = await tempDir();
  const folder = await runPeer(
    "download",
    "docs/",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(folder.code, 0, folder.stderr);
  for (const name of ["docs/a.txt", "docs/sub/b.bin"] as const) {
    assert.deepEqual(await Deno.readFile(join(out.path, name)), files[name]);
  }
  assert.equal(await exists(join(out.path, "docs-old")), false);
  const lines = folder.stdout.trim().split("\n");
  // One overall progress line per step, never one per file.
  assert.ok(lines.some((l) => /^progress docs\/ \d+\/2 files/.test(l)));
  assert.ok(!lines.some((l) => /^progress docs\/a\.txt/.test(l)));
  // The per-file summary, then the total.
  assert.match(folder.stdout, /^ {2}ok {6}docs\/a\.txt \(1000 B\), verified$/m);
  assert.match(
    folder.stdout,
    /^ {2}ok {6}docs\/sub\/b\.bin \(.*\), verified$/m,
  );
  assert.match(
    lines.at(-1)!,
    /^Downloaded 2 of 2 files matching docs\/ \(.* received in [\d.]+ s\)$/,
  );

  const glob = await runPeer(
    "download",
    "*.iso",
    "--json",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(glob.code, 0, glob.stderr);
  const summary = JSON.parse(glob.stdout);
  assert.deepEqual(
    summary.files.map((f: { name: string; ok: boolean }) => [f.name, f.ok]),
    [["isos/one.iso", true], ["two.iso", true]],
  );
  for (const name of ["isos/one.iso", "two.iso"] as const) {
    assert.deepEqual(await Deno.readFile(join(out.path, name)), files[name]);
  }
  assert.equal(await exists(join(out.path, "readme.txt")), false);

  // A pattern that leaves the download directory is refused outright.
  const escape = await runPeer(
    "download",
    "../*",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.notEqual(escape.code, 0);
  assert.match(
    escape.stderr,
    /Cannot accept pattern "\.\.\/\*": .*"\.\." segment/,
  );
  // Nothing matching: one line saying so.
  const none = await runPeer(
    "download",
    "nothing/",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no file on the network matches it/);
});

Deno.test("The prompt downloads a folder in the background", async () => {
  await using tracker = await spawnTracker();
  await using source = await tempDir();
  await Deno.mkdir(join(source.path, "docs"));
  const a = await writeRandomFile(join(source.path, "docs/a.txt"), 2000);
  const b = await writeRandomFile(join(source.path, "docs/b.txt"), 3000);
  await using _seeder = await spawnPeer({
    tracker: tracker.address,
    shared: source.path,
  });
  await using mine = await tempDir();
  await using prompt = await spawnPeer({
    tracker: tracker.address,
    shared: mine.path,
    daemon: false,
  });
  await prompt.waitFor(/Type "help" for commands/);
  const from = prompt.lines.length;
  await prompt.writeLine("download docs/");
  await prompt.waitFor(/^Downloaded 2 of 2 files matching docs\//, { from });
  assert.match(
    prompt.stdout,
    /^ {2}ok {6}docs\/b\.txt \([\d.]+ KiB\), verified$/m,
  );
  assert.deepEqual(await Deno.readFile(join(mine.path, "docs/a.txt")), a);
  assert.deepEqual(await Deno.readFile(join(mine.path, "docs/b.txt")), b);
  await prompt.writeLine("exit");
  assert.equal((await prompt.exited()).code, 0, prompt.stderr);
});

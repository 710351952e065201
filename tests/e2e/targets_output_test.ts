/**
 * Targets a user can type and output a script can read, with real tracker
 * and peer processes: id prefixes from the command line, the prompt and the
 * dashboard; ambiguity errors naming the ids; versioned `--json` with errors
 * on stdout; exit 130 on Ctrl-C; plurals, byte counts, sorting, rates.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { contentId, sha256Hex } from "../../lib/content/manifest.ts";
import {
  assertOneLineError,
  CliProcess,
  freePort,
  PEER_TS,
  pollUntil,
  runPeer,
  sha256File,
  spawnPeer,
  spawnTracker,
  taskPermissions,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

/** The content id a peer with the default 1 MiB chunks gives `text`. */
function idOf(text: string): string {
  const bytes = new TextEncoder().encode(text);
  return contentId(bytes.length, 1024 * 1024, [sha256Hex(bytes)]);
}

/** The ids of the two `notes.txt` of fixtures/shared1 and shared2. */
async function notesIds(): Promise<[string, string]> {
  const read = (dir: string) =>
    Deno.readTextFile(
      new URL(`../../fixtures/${dir}/notes.txt`, import.meta.url),
    );
  return [idOf(await read("shared1")), idOf(await read("shared2"))];
}

Deno.test("A duplicate name is refused with its ids, and each downloads by an id prefix", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using one = await tempDir("shared1");
  await using two = await tempDir("shared2");
  await using _peerOne = await spawnPeer({
    tracker: tracker.address,
    shared: one.path,
  });
  await using peerTwo = await spawnPeer({
    tracker: tracker.address,
    shared: two.path,
  });
  const [idOne, idTwo] = await notesIds();
  await using out = await tempDir();

  const byName = await runPeer(
    "download",
    "notes.txt",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(byName.code, 1, byName.stdout);
  assertOneLineError(byName, "an ambiguous name");
  for (const id of [idOne, idTwo]) {
    assert.ok(byName.stderr.includes(id.slice(0, 16)), byName.stderr);
  }
  assert.match(byName.stderr, /first 8 or more characters/);

  // The table shows 16 characters; 8 of them are enough.
  const byPrefix = await runPeer(
    "download",
    idOne.slice(0, 8),
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(byPrefix.code, 0, byPrefix.stderr);
  assert.equal(
    await sha256File(join(out.path, "notes.txt")),
    await sha256File(join(one.path, "notes.txt")),
  );

  const holders = await runPeer(
    "peers",
    idTwo.slice(0, 10).toUpperCase(),
    "--json",
    "--tracker",
    tracker.address,
  );
  assert.equal(holders.code, 0, holders.stderr);
  const { peers } = JSON.parse(holders.stdout);
  assert.deepEqual(peers.map((p: { address: string }) => p.address), [
    peerTwo.address,
  ]);
});

Deno.test("An id prefix that starts two ids lists both; a longer one downloads", async () => {
  // Found once by search: two contents whose ids share 8 hex digits.
  const texts = ["prefix twin 60103\n", "prefix twin 99765\n"];
  const [a, b] = texts.map(idOf) as [string, string];
  assert.equal(a.slice(0, 8), b.slice(0, 8));
  await using tracker = await spawnTracker({ interval: "30s" });
  await using shared = await tempDir();
  await Deno.writeTextFile(join(shared.path, "twin-a.txt"), texts[0]!);
  await Deno.writeTextFile(join(shared.path, "twin-b.txt"), texts[1]!);
  await using _peer = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
  });
  await using out = await tempDir();
  const common = a.slice(0, 8);
  const ambiguous = await runPeer(
    "download",
    common,
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(ambiguous.code, 1, ambiguous.stdout);
  assertOneLineError(ambiguous, "an ambiguous prefix");
  assert.match(
    ambiguous.stderr,
    new RegExp(
      `2 content ids match \\(${
        [a, b].sort().map((id) => id.slice(0, 16)).join(", ")
      }\\)`,
    ),
  );
  let unique = 9;
  while (a.slice(0, unique) === b.slice(0, unique)) unique++;
  const fine = await runPeer(
    "download",
    b.slice(0, unique),
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(fine.code, 0, fine.stderr);
  assert.equal(await Deno.readTextFile(join(out.path, "twin-b.txt")), texts[1]);
});

Deno.test("The prompt and the dashboard take id prefixes too", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using one = await tempDir("shared1");
  await using two = await tempDir("shared2");
  await using _holderOne = await spawnPeer({
    tracker: tracker.address,
    shared: one.path,
  });
  await using _holderTwo = await spawnPeer({
    tracker: tracker.address,
    shared: two.path,
  });
  const [, idTwo] = await notesIds();
  // The prompt's peer holds neither notes.txt (a peer is never its own source).
  await using mine = await tempDir();
  await Deno.mkdir(join(mine.path, "from-prompt"));
  await using prompt = await spawnPeer({
    tracker: tracker.address,
    shared: mine.path,
    daemon: false,
    args: ["--out", join(mine.path, "from-prompt"), "--http-port", "0"],
  });
  const from = prompt.lines.length;
  await prompt.writeLine("download notes.txt");
  await prompt.waitFor(/error: Cannot download notes\.txt: 2 different files/, {
    from,
  });
  await prompt.writeLine(`download ${idTwo.slice(0, 12)}`);
  await prompt.waitFor(/^Downloaded notes\.txt .*verified/, { from });
  assert.equal(
    await sha256File(join(mine.path, "from-prompt", "notes.txt")),
    await sha256File(join(two.path, "notes.txt")),
  );

  const { match } = await prompt.waitFor(
    /^Dashboard on (http:\/\/[^/]+\/)#token=(\S+)$/,
  );
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${match[1]}${path}`, {
      ...init,
      headers: {
        "content-type": "application/json",
        "x-shoal-token": match[2]!,
      },
    });
  const holders = await (await api(
    `api/peers?target=${idTwo.slice(0, 8)}`,
  )).json();
  // The holder, and the prompt peer itself once it shares its download.
  assert.ok(holders.peers.length >= 1, JSON.stringify(holders));
  assert.ok(
    holders.peers.every((p: { id: string }) => p.id === idTwo),
    JSON.stringify(holders),
  );
  await Deno.remove(join(mine.path, "from-prompt", "notes.txt"));
  const started = await api("api/downloads", {
    method: "POST",
    body: JSON.stringify({ target: idTwo.slice(0, 8) }),
  });
  assert.equal(started.status, 202, await started.clone().text());
  const { download } = await started.json();
  type Row = { key: string; state: string; id: string | null; error: string };
  const finished = await pollUntil(async () => {
    const { downloads } = await (await api("api/downloads")).json();
    const mine = (downloads as Row[]).find((d) => d.key === download.key);
    return mine && ["done", "failed"].includes(mine.state) ? mine : undefined;
  }, "the dashboard download of an id prefix ends");
  assert.equal(finished.state, "done", finished.error);
  assert.equal(finished.id, idTwo);
});

Deno.test("Output: versioned JSON, errors as JSON, sorted lists, plurals, rates", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using one = await tempDir("shared1");
  await using two = await tempDir("shared2");
  await using holder = await spawnPeer({
    tracker: tracker.address,
    shared: one.path,
  });
  await using _other = await spawnPeer({
    tracker: tracker.address,
    shared: two.path,
  });

  const table = await runPeer("list", "--tracker", tracker.address);
  assert.equal(table.code, 0, table.stderr);
  const names = table.stdout.trim().split("\n").slice(1).map((l) =>
    l.split(/\s+/)[0]!
  );
  assert.deepEqual(names, [...names].sort());
  assert.equal(names.length, 6);

  const listed = await runPeer("list", "--json", "--tracker", tracker.address);
  const doc = JSON.parse(listed.stdout);
  assert.equal(doc.version, 1);
  assert.equal(doc.query, null);
  const jsonNames = doc.files.map((f: { name: string }) => f.name);
  assert.deepEqual(jsonNames, [...jsonNames].sort());

  const none = await runPeer(
    "list",
    "nothing-like-this*",
    "--tracker",
    tracker.address,
  );
  assert.equal(none.stdout.trim(), 'No files match "nothing-like-this*".');

  await using out = await tempDir();
  const got = await runPeer(
    "download",
    "docs/alpha.md",
    "--json",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(got.code, 0, got.stderr);
  const result = JSON.parse(got.stdout);
  assert.equal(result.version, 1);
  assert.ok(Number.isInteger(result.elapsedMs), String(result.elapsedMs));
  assert.ok(Number.isInteger(result.rate), String(result.rate));
  assert.equal(result.size, 48);

  const text = await runPeer(
    "download",
    "common.txt",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.match(
    text.stdout,
    /^Downloaded common\.txt \(72 B\) in \d+\.\d\d s at \d+(\.\d)? (B|KiB|MiB)\/s, verified -> /m,
  );

  const down = `127.0.0.1:${freePort()}`;
  const failed = await runPeer("list", "--json", "--tracker", down);
  assert.equal(failed.code, 1);
  assertOneLineError(failed, "list --json with the tracker down");
  const error = JSON.parse(failed.stdout);
  assert.equal(error.version, 1);
  assert.equal(error.error.exitCode, 1);
  assert.match(error.error.message, /refused|running/i);
  const usage = await runPeer(
    "download",
    "x",
    "--json",
    "--stall-timeout",
    "9",
  );
  assert.equal(usage.code, 2);
  assert.equal(JSON.parse(usage.stdout).error.exitCode, 2);

  // The holder served alpha.md and common.txt (one chunk each) to us.
  holder.kill("SIGINT");
  await holder.exited();
  assert.match(
    holder.stdout,
    /^Uploaded 120 bytes in 2 chunks\. Unregistered; bye\.$/m,
  );
});

Deno.test("Ctrl-C stops a one-shot download with exit 130 and keeps its part", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using shared = await tempDir();
  await writeRandomFile(join(shared.path, "slow.bin"), 2 * 1024 * 1024);
  await using _seeder = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    chunkSize: "64K",
  });
  await using out = await tempDir();
  await using downloader = new CliProcess([
    "run",
    ...taskPermissions("peer"),
    PEER_TS,
    "download",
    "slow.bin",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
    "--max-download-rate",
    "64K",
  ]);
  await downloader.waitFor(/^progress slow\.bin /);
  downloader.kill("SIGINT");
  const status = await downloader.exited();
  assert.equal(status.code, 130, downloader.stderr);
  assert.match(
    downloader.stderr,
    /^peer: Cancelled slow\.bin; the verified part is kept for a resume$/m,
  );
  const left = [...Deno.readDirSync(out.path)].map((e) => e.name);
  assert.ok(left.some((name) => name.endsWith(".part")), left.join(", "));
});

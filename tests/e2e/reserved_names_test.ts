/**
 * Names that are devices, streams or otherwise not plain files on Windows
 * (`CON`, `nul.txt`, `a.txt:stream`, `trail.`), against a real tracker and
 * peer: never announced, never served, refused on both protocols.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RemoteError } from "../../lib/errors.ts";
import { RpcClient } from "../../lib/protocol/rpc.ts";
import { legacyRequest } from "../../lib/protocol/legacy.ts";
import { ShareIndex } from "../../lib/share/share.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { spawnPeer, spawnTracker, tempDir } from "../_helpers.ts";

const decoder = new TextDecoder();

/** Names Linux stores as plain files but Windows reads as something else. */
const WINDOWS_NAMES = [
  "CON",
  "nul.txt",
  "Aux.tar.gz",
  "com1.log",
  "LPT9",
  "a.txt:stream",
  "q?.txt",
  "pipe|name",
  "trail.",
  "space ",
  "con/inside.txt",
  "dir./inside.txt",
];

/** A shared directory with `ok.txt` and a file under each Windows name. */
async function hostileShare() {
  const share = await tempDir();
  await Deno.writeTextFile(join(share.path, "ok.txt"), "fine to share\n");
  await Deno.mkdir(join(share.path, "con"));
  await Deno.mkdir(join(share.path, "dir."));
  for (const name of WINDOWS_NAMES) {
    await Deno.writeTextFile(join(share.path, name), `bytes of ${name}\n`);
  }
  return share;
}

/** One seed-protocol request to a peer; every byte it sent back, as text. */
async function seedDownload(port: number, filename: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), 5000);
  try {
    const bytes = new TextEncoder().encode(
      JSON.stringify({ command: "download", filename }) + "\n",
    );
    for (let offset = 0; offset < bytes.length;) {
      offset += await conn.write(bytes.subarray(offset));
    }
    let text = "";
    const buffer = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return text;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("ShareIndex skips local files with Windows device and stream names and says why", async () => {
  await using share = await hostileShare();
  const skipped = new Map<string, string>();
  const index = await ShareIndex.open({
    root: share.path,
    onSkip: (name, reason) => skipped.set(name, reason),
  });
  assert.deepEqual(index.files().map((f) => f.name), ["ok.txt"]);
  // Folders are skipped whole: their files are never looked at.
  const expected = WINDOWS_NAMES.filter((n) => !n.includes("/"))
    .concat(["con", "dir."]).sort();
  assert.deepEqual([...skipped.keys()].sort(), expected);
  assert.match(skipped.get("CON")!, /^Cannot accept name "CON": .*device CON$/);
  assert.match(skipped.get("a.txt:stream")!, /contains ":"/);
  assert.match(skipped.get("trail.")!, /ends with a dot/);
  for (const reason of skipped.values()) assert.ok(!reason.includes("\n"));
  // A rescan reports nothing twice.
  skipped.clear();
  await index.rescan();
  assert.equal(skipped.size, 0);
});

Deno.test("A peer neither announces nor serves Windows device and stream names, on either protocol", async () => {
  await using share = await hostileShare();
  await using tracker = await spawnTracker();
  await using peer = await spawnPeer({
    tracker: tracker.address,
    shared: share.path,
  });
  // The scan went on past the hostile names.
  assert.match(peer.stdout, /serving 1 file /);
  const listed = await new TrackerClient(tracker.address).list();
  assert.deepEqual(listed.map((f) => f.name), ["ok.txt"]);

  await using rpc = await RpcClient.connect(peer.address, {
    requestTimeoutMs: 5000,
  });
  for (const name of WINDOWS_NAMES) {
    await assert.rejects(
      rpc.request({ type: "manifest", name }),
      (error: unknown) => {
        assert.ok(error instanceof RemoteError, String(error));
        assert.equal(error.code, "bad_request", `manifest ${name}`);
        assert.match(error.message, /Windows/, `manifest ${name}`);
        return true;
      },
      `manifest for ${JSON.stringify(name)} is refused`,
    );
    const reply = await seedDownload(peer.port, name);
    assert.equal(reply.indexOf("\n"), reply.length - 1, `one line: ${reply}`);
    assert.match(
      JSON.parse(reply).status,
      /^error: .*Windows/,
      `seed download of ${JSON.stringify(name)} is refused`,
    );
  }
  // The connection survived every refusal, and the honest file is served.
  const ok = await rpc.call({ type: "manifest", name: "ok.txt" }, "manifest");
  assert.equal((ok.manifest as { size: number }).size, 14);
});

Deno.test("A tracker refuses Windows device and stream names in register on either protocol", async () => {
  await using tracker = await spawnTracker();
  const id = "a".repeat(64);
  await using rpc = await RpcClient.connect(tracker.address, {
    requestTimeoutMs: 5000,
  });
  for (const name of WINDOWS_NAMES) {
    await assert.rejects(
      rpc.request({
        type: "register",
        port: 40001,
        files: [{ name: "ok.txt", id, size: 1 }, { name, id, size: 1 }],
      }),
      (error: unknown) => {
        assert.ok(error instanceof RemoteError, String(error));
        assert.equal(error.code, "bad_request", `register ${name}`);
        assert.match(error.message, /Windows/, `register ${name}`);
        return true;
      },
      `framed register of ${JSON.stringify(name)} is refused`,
    );
    const reply = await legacyRequest(tracker.address, {
      command: "register",
      address: ":40002",
      files: ["ok.txt", name],
    }, 5000);
    assert.match(
      String(reply.status),
      /^error: .*Windows/,
      `seed register of ${JSON.stringify(name)} is refused`,
    );
  }
  assert.deepEqual(await new TrackerClient(tracker.address).list(), []);
});

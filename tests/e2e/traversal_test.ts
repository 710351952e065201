/**
 * Path traversal against a running peer: hostile names over the framed and
 * seed protocols, and symlinks leading out of the shared directory. The bytes
 * of a secret file outside the share must never come back.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RemoteError } from "../../lib/errors.ts";
import { RpcClient } from "../../lib/protocol/rpc.ts";
import { hashFile } from "../../lib/content/manifest.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { spawnPeer, spawnTracker, tempDir } from "../_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Whether `needle` occurs in `haystack`. */
function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return true;
  }
  return false;
}

/** One seed-protocol request; returns every byte the peer sent back. */
async function seedExchange(port: number, request: unknown) {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const bytes = encoder.encode(JSON.stringify(request) + "\n");
  for (let offset = 0; offset < bytes.length;) {
    offset += await conn.write(bytes.subarray(offset));
  }
  const parts: number[] = [];
  const buffer = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    parts.push(...buffer.subarray(0, n));
  }
  return new Uint8Array(parts);
}

Deno.test("A peer refuses traversal names and never serves files outside its share", async () => {
  await using outside = await tempDir();
  const secretText = `TOP SECRET ${crypto.randomUUID()}\n`;
  const secret = encoder.encode(secretText);
  const secretPath = join(outside.path, "secret.txt");
  await Deno.writeFile(secretPath, secret);

  await using share = await tempDir();
  await Deno.writeTextFile(join(share.path, "ok.txt"), "fine to share\n");
  await Deno.symlink(secretPath, join(share.path, "leak.txt"));
  await Deno.symlink(outside.path, join(share.path, "outdir"));

  await using tracker = await spawnTracker();
  await using peer = await spawnPeer({
    tracker: tracker.address,
    shared: share.path,
  });
  assert.match(peer.stdout, /serving 1 file /);

  const listed = await new TrackerClient(tracker.address).list();
  assert.deepEqual(listed.map((f) => f.name), ["ok.txt"]);

  const secretId = (await hashFile(secretPath, "secret.txt")).id;
  const hostile = [
    "../x",
    `../${outside.path.split("/").pop()}/secret.txt`,
    "/etc/passwd",
    secretPath,
    "a\\b",
    "..\\secret.txt",
    "ok.txt\u0000",
    "a\u0000/../../secret.txt",
    "leak.txt",
    "outdir/secret.txt",
    "./ok.txt",
    "",
  ];

  await using rpc = await RpcClient.connect(peer.address);
  for (const name of hostile) {
    await assert.rejects(
      rpc.request({ type: "manifest", name }),
      (error: unknown) => {
        assert.ok(error instanceof RemoteError, String(error));
        assert.doesNotMatch(error.message, /TOP SECRET/);
        return true;
      },
      `manifest for ${JSON.stringify(name)} is refused`,
    );
  }
  for (
    const request of [
      { type: "manifest", id: secretId },
      { type: "chunk", id: secretId, index: 0 },
    ]
  ) {
    await assert.rejects(
      rpc.request(request),
      RemoteError,
      `${request.type} by the secret's content id is refused`,
    );
  }
  // The connection survived every refusal.
  const manifest = await rpc.call(
    { type: "manifest", name: "ok.txt" },
    "manifest",
  );
  assert.equal((manifest.manifest as { size: number }).size, 14);

  for (const filename of hostile) {
    const reply = await seedExchange(peer.port, {
      command: "download",
      filename,
    });
    assert.equal(
      contains(reply, secret),
      false,
      `secret leaked via ${filename}`,
    );
    const text = decoder.decode(reply);
    assert.equal(
      text.indexOf("\n"),
      text.length - 1,
      `one line for ${filename}`,
    );
    assert.match(
      JSON.parse(text).status,
      /^error/,
      `seed download of ${JSON.stringify(filename)} is refused`,
    );
  }
  const ok = decoder.decode(
    await seedExchange(peer.port, { command: "download", filename: "ok.txt" }),
  );
  // The ok line is padded with leading spaces (JSON whitespace) to 512 bytes.
  assert.equal(ok.trimStart(), '{"status":"ok","size":14}\nfine to share\n');
});

/**
 * Encrypted, authenticated links end to end: a recording relay between a
 * peer and its tracker and between two peers sees neither a file's name nor
 * its bytes; a relay that changes one byte kills that connection while the
 * download completes from another source; a holder proving a key other than
 * the one the tracker listed is refused; a dashboard bound beyond loopback
 * refuses requests without its token.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { download } from "../../lib/download/transfer.ts";
import { startPeer } from "../../lib/peer/node.ts";
import { startTracker } from "../../lib/tracker/server.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { startDashboard } from "../../lib/dashboard/dashboard.ts";
import {
  generateIdentity,
  keyToHex,
  peerIdOf,
} from "../../lib/net/identity.ts";
import { KeyMismatchError } from "../../lib/net/secure.ts";
import {
  pollUntil,
  sha256,
  spawnPeer,
  spawnTracker,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";
import { contains, startRelay } from "./_relay.ts";

const NAME = "quarterly-merger-plans.bin";
const SIZE = 700_000;

/** 32-byte samples of `bytes` every 4 KiB. */
function samples(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i + 32 <= bytes.length; i += 4096) {
    out.push(bytes.subarray(i, i + 32));
  }
  return out;
}

Deno.test("A recording relay sees neither the file's name nor its bytes", async () => {
  await using shared = await tempDir();
  await using out = await tempDir();
  const content = await writeRandomFile(join(shared.path, NAME), SIZE);
  await using tracker = await spawnTracker({ interval: "30s" });
  await using trackerRelay = startRelay(tracker.port);
  // The seeder registers through the relay: its file list crosses it.
  await using seeder = await spawnPeer({
    tracker: trackerRelay.address,
    shared: shared.path,
    chunkSize: "64K",
  });
  const idLine = await seeder.waitFor(/^Peer id ([a-z2-7]{32})$/);
  const [holder] = await new TrackerClient(trackerRelay.address).getPeers({
    name: NAME,
  });
  assert.ok(holder?.key, "the tracker lists the key the seeder proved");
  assert.equal(peerIdOf(Buffer.from(holder.key, "hex")), idLine.match[1]);

  await using peerRelay = startRelay(seeder.port);
  const result = await download(holder.id!, {
    sources: [{ ...holder, address: peerRelay.address }],
    outDir: out.path,
  });
  assert.equal(result.name, NAME);
  assert.deepEqual(result.sources.map((s) => s.address), [peerRelay.address]);
  assert.equal(
    await sha256(await Deno.readFile(join(out.path, NAME))),
    await sha256(content),
  );

  for (
    const [what, relay] of [["tracker", trackerRelay], [
      "peer",
      peerRelay,
    ]] as const
  ) {
    const seen = relay.bytes();
    assert.ok(seen.length > 0, `traffic went through the ${what} relay`);
    const encoder = new TextEncoder();
    for (const secret of [NAME, holder.id!, "quarterly"]) {
      assert.equal(
        contains(seen, encoder.encode(secret)),
        false,
        `${secret} crossed the ${what} relay in the clear`,
      );
    }
    for (const sample of samples(content)) {
      assert.equal(contains(seen, sample), false, `file bytes crossed ${what}`);
    }
  }
  assert.ok(peerRelay.bytes().length > SIZE, "the file crossed the relay");
});

Deno.test("A changed byte kills that connection; the download completes from another source", async () => {
  await using shared = await tempDir();
  await using out = await tempDir();
  const content = await writeRandomFile(join(shared.path, NAME), SIZE);
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  await using seeder = await startPeer({
    tracker: tracker.address,
    shared: shared.path,
    hostname: "127.0.0.1",
    chunkSize: 64 * 1024,
    watch: false,
  });
  const errors: string[] = [];
  seeder.addEventListener("protocol-error", (e) => {
    errors.push(e.detail.message);
  });
  await seeder.refresh();
  const [holder] = await new TrackerClient(tracker.address).getPeers({
    name: NAME,
  });
  assert.ok(holder);
  // Byte 120 of what the client sends is just past the handshake (108
  // bytes): inside its first encrypted record.
  await using tamper = startRelay(seeder.port, { flipClientByteAt: 120 });
  const result = await download(holder.id!, {
    sources: [{ ...holder, address: tamper.address }, holder],
    outDir: out.path,
  });
  assert.equal(
    await sha256(await Deno.readFile(join(out.path, NAME))),
    await sha256(content),
  );
  assert.ok(tamper.connections >= 1, "the tampering relay was used");
  assert.deepEqual(result.sources.map((s) => s.address), [holder.address]);
  await pollUntil(
    () =>
      errors.find((m) =>
        /an encrypted record failed authentication \(changed on the way\); connection closed/
          .test(m)
      ),
    `the seeder reports the changed record (${errors.join("; ")})`,
  );
});

Deno.test("A holder proving another key than the tracker listed is refused", async () => {
  await using shared = await tempDir();
  await using out = await tempDir();
  await writeRandomFile(join(shared.path, NAME), 200_000);
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 30_000,
  });
  // The impostor serves the file but registers nowhere (a dead tracker).
  await using impostor = await startPeer({
    tracker: "127.0.0.1:1",
    shared: shared.path,
    hostname: "127.0.0.1",
    identity: generateIdentity(),
    watch: false,
  });
  const file = impostor.shares.files()[0]!;
  // The tracker holds a registration of that address proved with the
  // honest peer's key (the address was taken over after it registered).
  const honest = generateIdentity();
  await new TrackerClient(tracker.address, { identity: honest }).register(
    impostor.port,
    [{ name: file.name, id: file.id, size: file.size }],
  );
  const [listed] = await new TrackerClient(tracker.address).getPeers({
    name: NAME,
  });
  assert.equal(listed?.key, keyToHex(honest.publicKey));

  await assert.rejects(
    download(NAME, { tracker: tracker.address, outDir: out.path }),
    (error: unknown) => {
      assert.match(
        String((error as Error).message),
        new RegExp(
          `Cannot trust 127\\.0\\.0\\.1:${impostor.port}: it proved key ${impostor.id}, not the listed ${
            peerIdOf(honest.publicKey)
          }`,
        ),
      );
      return true;
    },
  );
  assert.equal(impostor.status().uploaded.bytes, 0, "nothing was fetched");
  // The key check itself, without the download around it.
  const { RpcClient } = await import("../../lib/protocol/rpc.ts");
  await assert.rejects(
    RpcClient.connect(`127.0.0.1:${impostor.port}`, {
      remoteKey: honest.publicKey,
    }),
    KeyMismatchError,
  );
});

/** This machine's first non-loopback IPv4 address, if it has one. */
function outsideAddress(): string | undefined {
  return Deno.networkInterfaces().find((nic) =>
    nic.family === "IPv4" && !nic.address.startsWith("127.")
  )?.address;
}

Deno.test({
  name: "A dashboard bound beyond loopback refuses requests without its token",
  ignore: outsideAddress() === undefined,
  fn: async () => {
    const address = outsideAddress()!;
    await using shared = await tempDir();
    await using tracker = await startTracker({
      port: 0,
      hostname: "127.0.0.1",
    });
    await using peer = await startPeer({
      tracker: tracker.address,
      shared: shared.path,
      hostname: "127.0.0.1",
      watch: false,
    });
    await using dashboard = await startDashboard(peer, {
      hostname: "0.0.0.0",
      port: 0,
    });
    const url = `http://${address}:${dashboard.port}/`;
    assert.ok(
      dashboard.urls.includes(url),
      `the dashboard lists ${url} among ${dashboard.urls.join(", ")}`,
    );
    for (const headers of [{}, { "x-shoal-token": "x".repeat(43) }]) {
      const response = await fetch(`${url}api/status`, { headers });
      assert.equal(response.status, 403, await response.text());
    }
    const download = await fetch(`${url}api/downloads`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ target: "x" }),
    });
    assert.equal(download.status, 403, await download.text());
    // Nothing served hands the token out: not the page, not an API route.
    for (const path of ["", "app.js", "api/session", "api/token"]) {
      const response = await fetch(`${url}${path}`);
      assert.equal(
        (await response.text()).includes(dashboard.token),
        false,
        `GET /${path} gave the token away`,
      );
    }
    const ok = await fetch(`${url}api/status`, {
      headers: { "x-shoal-token": dashboard.token },
    });
    assert.equal(ok.status, 200);
    const status = await ok.json();
    assert.equal(status.id, peer.id);
  },
});

Deno.test("A peer keeps its identity in a 0600 file, reuses it, and refuses one others may read", async () => {
  await using shared = await tempDir();
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const start = () =>
    startPeer({
      tracker: tracker.address,
      shared: shared.path,
      hostname: "127.0.0.1",
      watch: false,
    });
  const path = join(shared.path, ".shoal", "identity.key");
  let id: string;
  {
    await using peer = await start();
    id = peer.id;
    assert.equal(peer.status().id, id);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  }
  {
    await using again = await start();
    assert.equal(again.id, id, "the same key after a restart");
  }
  await Deno.chmod(path, 0o644);
  await assert.rejects(start(), /other users may read it \(mode 644\)/);
  // Rotation: delete the file, get a new id.
  await Deno.remove(path);
  await using rotated = await start();
  assert.notEqual(rotated.id, id);
});

Deno.test("A server can refuse plaintext framed and seed-protocol clients", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    plaintext: false,
    seedProtocol: false,
  });
  // Encrypted: served.
  assert.deepEqual(await new TrackerClient(tracker.address).list(), []);
  // Plaintext framed: closed unanswered.
  const { RpcClient } = await import("../../lib/protocol/rpc.ts");
  await using plain = await RpcClient.connect(tracker.address, {
    encryption: false,
    requestTimeoutMs: 5000,
  });
  await assert.rejects(plain.call({ type: "list" }, "files"));
  // Seed protocol: closed unanswered.
  const { legacyRequest } = await import("../../lib/protocol/legacy.ts");
  await assert.rejects(
    legacyRequest(tracker.address, { command: "list" }, { timeoutMs: 5000 }),
  );
});

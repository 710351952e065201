/**
 * Faults a user meets for real, driven through the CLI: a download directory
 * without write permission, a disk that fills up mid-download (a small tmpfs,
 * where mounting is possible), and a shared file modified or deleted while it
 * is being served. A peer vanishing mid-chunk and a tracker restart are
 * covered by `swarm_test.ts` and `expiry_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hashFile } from "../../lib/content/manifest.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import {
  assertOneLineError,
  CliProcess,
  exists,
  freePort,
  PEER_TS,
  pollUntil,
  run,
  type RunResult,
  sha256,
  sha256File,
  spawnPeer,
  spawnTracker,
  taskPermissions,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

/** Runs a program to completion, collecting its output. */
async function runCommand(
  program: string,
  args: string[],
  timeoutMs = 30_000,
): Promise<RunResult> {
  const output = await new Deno.Command(program, {
    args,
    env: { NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Whether `program --version` runs (the program is installed). */
async function available(program: string): Promise<boolean> {
  try {
    return (await runCommand(program, ["--version"])).code === 0;
  } catch {
    return false;
  }
}

const isRoot = Deno.uid() === 0;
/**
 * Root ignores file modes (CAP_DAC_OVERRIDE). To meet a read-only directory
 * as a user does, root runs the downloader without those capabilities.
 */
const dropDacCapabilities = isRoot && await available("setpriv");

/** Whether this machine lets us mount a tmpfs (root with CAP_SYS_ADMIN). */
async function canMountTmpfs(): Promise<boolean> {
  if (!isRoot) return false;
  const dir = await Deno.makeTempDir({ prefix: "shoal_mount_probe_" });
  try {
    const mounted = await runCommand("mount", [
      "-t",
      "tmpfs",
      "-o",
      "size=64k",
      "tmpfs",
      dir,
    ]).catch(() => undefined);
    if (mounted?.code !== 0) return false;
    await runCommand("umount", [dir]);
    return true;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
const tmpfsAvailable = await canMountTmpfs();

/** The argument list of `deno run <peer task flags> peer.ts …`. */
function peerCommand(args: string[]): string[] {
  return ["run", ...taskPermissions("peer"), PEER_TS, ...args];
}

Deno.test({
  name:
    "A download into a directory without write permission fails before contacting anyone",
  ignore: isRoot && !dropDacCapabilities,
  fn: async () => {
    await using dir = await tempDir();
    const readOnly = join(dir.path, "read-only");
    await Deno.mkdir(readOnly);
    await Deno.chmod(readOnly, 0o555);
    try {
      // Nothing listens at the tracker address: an error about the directory
      // proves the check ran before any network traffic.
      const args = peerCommand([
        "download",
        "big.bin",
        "--tracker",
        `127.0.0.1:${freePort()}`,
        "--out",
        readOnly,
      ]);
      const result = dropDacCapabilities
        ? await runCommand("setpriv", [
          "--bounding-set",
          "-dac_override,-dac_read_search",
          "--",
          Deno.execPath(),
          ...args,
        ])
        : await runCommand(Deno.execPath(), args);
      assert.equal(result.code, 1, result.stderr);
      assertOneLineError(result, "an unwritable download directory");
      assert.match(
        result.stderr,
        new RegExp(
          `^peer: Cannot download into ${readOnly}: the directory is not writable \\(Permission denied`,
        ),
      );
      assert.deepEqual([...Deno.readDirSync(readOnly)], []);
    } finally {
      await Deno.chmod(readOnly, 0o755);
    }
  },
});

Deno.test({
  name:
    "A download the disk cannot hold is refused up front; a disk filling up mid-download gives a clear error and keeps the partial file for a resume",
  ignore: !tmpfsAvailable,
  fn: async () => {
    await using shared = await tempDir();
    await using dir = await tempDir();
    const small = join(dir.path, "small");
    await Deno.mkdir(small);
    const mount = await runCommand("mount", [
      "-t",
      "tmpfs",
      "-o",
      "size=1m",
      "tmpfs",
      small,
    ]);
    assert.equal(mount.code, 0, mount.stderr);
    try {
      const content = await writeRandomFile(
        join(shared.path, "big.bin"),
        3 * 1024 * 1024,
      );
      await using tracker = await spawnTracker();
      // 1 MiB/s: the download is under way for seconds, time to fill the
      // disk under it.
      await using _seeder = await spawnPeer({
        tracker: tracker.address,
        shared: shared.path,
        chunkSize: "256K",
        args: ["--max-upload-rate", "1M"],
      });
      const download = [
        "download",
        "big.bin",
        "--json",
        "--tracker",
        tracker.address,
        "--out",
        small,
      ];
      // 1 MiB free for a 3 MiB file: refused before anything is written.
      const refused = await run("peer", download);
      assert.equal(refused.code, 1, refused.stdout);
      assertOneLineError(refused, "a download the disk cannot hold");
      assert.match(refused.stderr, /needs \d+ more bytes but .* free/);
      assert.deepEqual([...Deno.readDirSync(small)], []);

      // Room for it at the start, then another writer takes the rest.
      const grow = await runCommand("mount", ["-o", "remount,size=4m", small]);
      assert.equal(grow.code, 0, grow.stderr);
      const downloader = new CliProcess(
        peerCommand(download.filter((arg) => arg !== "--json")),
      );
      try {
        // Progress lines come per 10 %: some chunks are on disk by then.
        await downloader.waitFor(/^progress big\.bin\s+[1-9]\d%/, {
          timeoutMs: 30_000,
        });
        const filler = await Deno.open(join(small, "filler"), {
          write: true,
          create: true,
        });
        try {
          const block = new Uint8Array(64 * 1024);
          while (true) await filler.write(block);
        } catch {
          /* the disk is full */
        } finally {
          filler.close();
        }
        const status = await downloader.exited(60_000);
        assert.equal(status.code, 1, downloader.stdout);
      } finally {
        await downloader.close();
      }
      const part = [...Deno.readDirSync(small)]
        .map((e) => join(small, e.name))
        .find((name) => name.endsWith(".part"));
      assert.ok(part, "the partial file is kept");
      assert.match(
        downloader.stderr,
        new RegExp(
          `^peer: Cannot write ${part}: No space left on device .*\\((\\d+) verified chunks are kept; run the download again to resume\\)$`,
          "m",
        ),
      );
      assert.ok(await exists(`${part}.state`), "the resume state is kept");
      assert.equal(await exists(join(small, "big.bin")), false);

      // Space is freed: the same command resumes and finishes, verified.
      await Deno.remove(join(small, "filler"));
      const resumed = await run("peer", download);
      assert.equal(resumed.code, 0, resumed.stderr);
      const result = JSON.parse(resumed.stdout);
      assert.ok(
        result.resumedChunks >= 1,
        `chunks written before the disk filled are reused: ${resumed.stdout}`,
      );
      assert.equal(
        await sha256File(join(small, "big.bin")),
        await sha256(content),
      );
      assert.equal(await exists(part), false);
    } finally {
      await runCommand("umount", ["-l", small]);
    }
  },
});

/** Starts `peer download big.bin` and waits until it is under way. */
async function downloadInProgress(
  out: string,
  trackerAddress: string,
): Promise<CliProcess> {
  const downloader = new CliProcess(peerCommand([
    "download",
    "big.bin",
    "--tracker",
    trackerAddress,
    "--out",
    out,
    "--max-download-rate",
    "256K",
  ]));
  try {
    // Progress lines come per 10 %; it fetches 256 KiB/s, so about 7 s are
    // left to change the file under it, room for a busy machine.
    await downloader.waitFor(/^progress big\.bin\s+[1-9]\d%/);
  } catch (error) {
    await downloader.close();
    throw error;
  }
  return downloader;
}

Deno.test("A file modified while it is served: the download fails cleanly and the new content is re-announced", async () => {
  await using shared = await tempDir();
  await using out = await tempDir();
  const path = join(shared.path, "big.bin");
  await writeRandomFile(path, 2 * 1024 * 1024);
  await using tracker = await spawnTracker();
  await using _seeder = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    chunkSize: "64K",
    args: ["--settle", "100ms"],
  });
  await using downloader = await downloadInProgress(
    out.path,
    tracker.address,
  );

  const changed = await writeRandomFile(path, 2 * 1024 * 1024);
  const status = await downloader.exited(30_000);
  assert.equal(status.code, 1, downloader.stdout);
  assert.equal(downloader.errorLines.length, 1, downloader.stderr);
  assert.match(
    downloader.stderr,
    // Caught either by the seeder (size and mtime changed since hashing, or
    // already re-hashed: that content is gone) or by the downloader (a
    // chunk read after the change fails its hash), whichever comes first.
    /^peer: (Cannot finish big\.bin: \d+ of 32 chunks missing and no source left \(.*(changed on disk|No content|No chunk \d+ of)|Chunk \d+ from \S+ failed verification)/,
  );
  // No file under the final name, let alone one mixing old and new bytes.
  assert.equal(await exists(join(out.path, "big.bin")), false);

  // The seeder re-hashed the file and announced its new content id.
  const newId = (await hashFile(path, "big.bin", { chunkSize: 64 * 1024 }))
    .id;
  const client = new TrackerClient(tracker.address);
  await pollUntil(
    async () =>
      (await client.getPeers({ name: "big.bin" })).some((p) => p.id === newId)
        ? true
        : undefined,
    "the seeder re-announces big.bin with its new content id",
  );
  const again = await run("peer", [
    "download",
    "big.bin",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  ]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(
    await sha256File(join(out.path, "big.bin")),
    await sha256(changed),
  );
});

Deno.test("A file deleted while it is served: the download fails cleanly and the file is withdrawn", async () => {
  await using shared = await tempDir();
  await using out = await tempDir();
  const path = join(shared.path, "big.bin");
  await writeRandomFile(path, 2 * 1024 * 1024);
  await writeRandomFile(join(shared.path, "other.bin"), 1000);
  await using tracker = await spawnTracker();
  await using _seeder = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    chunkSize: "64K",
    args: ["--settle", "100ms"],
  });
  await using downloader = await downloadInProgress(
    out.path,
    tracker.address,
  );

  await Deno.remove(path);
  const status = await downloader.exited(30_000);
  assert.equal(status.code, 1, downloader.stdout);
  assert.equal(downloader.errorLines.length, 1, downloader.stderr);
  assert.match(
    downloader.stderr,
    /^peer: Cannot finish big\.bin: \d+ of 32 chunks missing and no source left/,
  );
  assert.equal(await exists(join(out.path, "big.bin")), false);

  const client = new TrackerClient(tracker.address);
  await pollUntil(
    async () => {
      const names = (await client.list()).map((f) => f.name);
      return names.includes("big.bin") ? undefined : names;
    },
    "the seeder withdraws big.bin from the tracker",
  ).then((names) => assert.deepEqual(names, ["other.bin"]));
});

/**
 * Unit tests of folder and glob downloads: which names a pattern picks, the
 * file limit, names from the network that would leave the download
 * directory, and a name listed with two contents.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  downloadBatch,
  isBatchTarget,
  selectBatch,
  validateBatchTarget,
} from "../lib/download/batch.ts";
import type { DownloadOptions } from "../lib/download/transfer.ts";
import type { ListedFile } from "../lib/protocol/messages.ts";

const ID_A = "a".repeat(64);
const ID_B = "b".repeat(64);

function listed(name: string, id: string | null = ID_A): ListedFile {
  return { name, id, size: 10, holders: 1 };
}

/** A fake single-file download that records what it was asked for. */
function recorder() {
  const calls: { target: string; saveAs?: string }[] = [];
  const run = (target: string, options: DownloadOptions) => {
    calls.push({
      target,
      ...(options.saveAs !== undefined ? { saveAs: options.saveAs } : {}),
    });
    return Promise.resolve({
      id: target,
      name: options.saveAs ?? target,
      path: `/out/${options.saveAs ?? target}`,
      size: 10,
      received: 10,
      resumedChunks: 0,
      verified: true,
      alreadyComplete: false,
      elapsedMs: 1,
      sources: [],
    });
  };
  return { calls, run };
}

Deno.test("A folder prefix picks the names under it, a glob whole paths or base names", () => {
  const files = [
    listed("docs/a.txt"),
    listed("docs/sub/b.txt"),
    listed("docs-old/c.txt"),
    listed("other/docs/d.txt"),
    listed("x/One.ISO"),
    listed("two.iso"),
  ];
  assert.deepEqual(selectBatch("docs/", files).map((f) => f.name), [
    "docs/a.txt",
    "docs/sub/b.txt",
  ]);
  assert.deepEqual(selectBatch("*.iso", files).map((f) => f.name), [
    "two.iso",
    "x/One.ISO",
  ]);
  assert.deepEqual(selectBatch("docs/*.txt", files).map((f) => f.name), [
    "docs/a.txt",
    "docs/sub/b.txt",
  ]);
  assert.equal(isBatchTarget("docs/a.txt"), false);
  for (const bad of ["../*", "/etc/", "a/../../*", "C:/x/", "a\\b/"]) {
    assert.throws(() => validateBatchTarget(bad), /Cannot accept pattern/, bad);
  }
});

Deno.test("A batch above the file limit is refused before anything is fetched", async () => {
  const { calls, run } = recorder();
  await assert.rejects(
    downloadBatch("*.txt", {
      outDir: "/out",
      maxFiles: 2,
      list: () =>
        Promise.resolve([listed("a.txt"), listed("b.txt"), listed("c.txt")]),
      run,
    }),
    (error: Error) => {
      assert.ok(error instanceof RangeError);
      assert.equal(
        error.message,
        "Cannot download *.txt: 3 files match, more than the limit of 2; narrow the pattern",
      );
      return true;
    },
  );
  assert.deepEqual(calls, []);
});

Deno.test("A listed name that would leave the download directory fails alone", async () => {
  const { calls, run } = recorder();
  const result = await downloadBatch("*", {
    outDir: "/out",
    list: () =>
      Promise.resolve([
        listed("../escape.txt"),
        listed("/etc/passwd"),
        listed("ok.txt", ID_B),
      ]),
    run,
  });
  assert.deepEqual(calls, [{ target: ID_B, saveAs: "ok.txt" }]);
  assert.equal(result.failed, 2);
  const failed = result.files.filter((f) => !f.ok);
  assert.deepEqual(failed.map((f) => f.name), ["../escape.txt", "/etc/passwd"]);
  for (const f of failed) assert.match(f.error!, /^Cannot accept name/);
});

Deno.test("A name listed with two contents is not guessed", async () => {
  const { calls, run } = recorder();
  const result = await downloadBatch("docs/", {
    outDir: "/out",
    list: () =>
      Promise.resolve([
        listed("docs/notes.txt", ID_A),
        listed("docs/notes.txt", ID_B),
        listed("docs/other.txt", ID_A),
      ]),
    run,
  });
  assert.deepEqual(calls, [{ target: ID_A, saveAs: "docs/other.txt" }]);
  const notes = result.files.find((f) => f.name === "docs/notes.txt")!;
  assert.equal(notes.ok, false);
  assert.match(
    notes.error!,
    /^Cannot download docs\/notes\.txt: 2 different files have that name \(ids aaaaaaaaaaaa, bbbbbbbbbbbb\)/,
  );
});

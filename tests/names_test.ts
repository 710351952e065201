/**
 * Tests of file-name validation and of resolving names under a root
 * directory without escaping it, symlinks included.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  isInside,
  MAX_NAME_BYTES,
  MAX_NAME_DEPTH,
  MAX_SEGMENT_BYTES,
  resolveForRead,
  resolveForWrite,
  validateName,
} from "../lib/content/names.ts";
import { ProtocolError } from "../lib/net/wire.ts";

/** `text` with regular-expression metacharacters escaped. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function assertRefused(name: unknown, pattern?: RegExp): void {
  assert.throws(
    () => validateName(name),
    (error: unknown) => {
      assert.ok(
        error instanceof ProtocolError,
        `${JSON.stringify(name)}: expected a ProtocolError, got ${error}`,
      );
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
    `${JSON.stringify(name)} was accepted`,
  );
}

Deno.test("validateName accepts plain, nested and unicode names", () => {
  for (
    const name of [
      "a.txt",
      "docs/a.txt",
      "deep/er/still/file.bin",
      "música/日本語.txt",
      "emoji 🐟/shoal.md",
      ".hidden",
      "..dots",
      "a..b",
      "name with spaces",
      "x".repeat(MAX_SEGMENT_BYTES),
      Array(MAX_NAME_DEPTH).fill("d").join("/"),
    ]
  ) {
    assert.equal(validateName(name), name);
  }
});

Deno.test("validateName refuses traversal, absolute and drive-letter paths", () => {
  assertRefused("../x", /".." segment/);
  assertRefused("a/../b", /".." segment/);
  assertRefused("a/..", /".." segment/);
  assertRefused("..", /".." segment/);
  assertRefused(".", /"." segment/);
  assertRefused("a/./b", /"." segment/);
  assertRefused("/etc/passwd", /absolute/);
  assertRefused("C:\\x");
  assertRefused("C:x", /drive letter/);
  assertRefused("c:/x", /drive letter/);
});

Deno.test("validateName refuses backslashes, NUL and control characters", () => {
  assertRefused("a\\b", /backslash/);
  assertRefused("..\\..\\x", /backslash/);
  assertRefused("a\u0000b", /NUL or control/);
  assertRefused("a\nb", /NUL or control/);
  assertRefused("tab\there", /NUL or control/);
  assertRefused("del\u007f", /NUL or control/);
  assertRefused("esc\u001b[31m", /NUL or control/);
});

Deno.test("validateName refuses empty names and empty segments", () => {
  assertRefused("", /empty/);
  assertRefused("a//b", /empty path segment/);
  assertRefused("a/", /empty path segment/);
  assertRefused("//server/share", /absolute/);
});

Deno.test("validateName refuses over-long names, segments and depths", () => {
  assertRefused("x".repeat(MAX_SEGMENT_BYTES + 1), /segment is longer/);
  // 128 two-byte characters: 256 bytes, though only 128 characters.
  assertRefused("é".repeat(128), /segment is longer than 255 bytes/);
  const long = Array(8).fill("y".repeat(200)).join("/");
  assert.ok(new TextEncoder().encode(long).length > MAX_NAME_BYTES);
  assertRefused(long, /longer than 1024 bytes/);
  assertRefused(Array(MAX_NAME_DEPTH + 1).fill("d").join("/"), /deeper/);
});

Deno.test("validateName refuses Windows device names in any case and with any extension", () => {
  const cases: [name: string, segment: string, device: string][] = [
    ["CON", "CON", "CON"],
    ["con", "con", "CON"],
    ["nul.txt", "nul.txt", "NUL"],
    ["Aux.tar.gz", "Aux.tar.gz", "AUX"],
    ["prn", "prn", "PRN"],
    ["com1", "com1", "COM1"],
    ["COM9.log", "COM9.log", "COM9"],
    ["lpt1", "lpt1", "LPT1"],
    ["LpT9.bin", "LpT9.bin", "LPT9"],
    ["com\u00b9.txt", "com\u00b9.txt", "COM\u00b9"],
    ["CONIN$", "CONIN$", "CONIN$"],
    ["conout$.txt", "conout$.txt", "CONOUT$"],
    ["nul .txt", "nul .txt", "NUL"],
    ["docs/CON/a.txt", "CON", "CON"],
    ["a/b/nul.txt", "nul.txt", "NUL"],
  ];
  for (const [name, segment, device] of cases) {
    assertRefused(
      name,
      new RegExp(
        `^Cannot accept name ${escape(JSON.stringify(name))}: segment ${
          escape(JSON.stringify(segment))
        } is the Windows device ${escape(device)}$`,
      ),
    );
  }
});

Deno.test("validateName refuses streams and characters Windows forbids", () => {
  assertRefused(
    "a.txt:stream",
    /^Cannot accept name "a.txt:stream": it contains ":", which Windows forbids$/,
  );
  assertRefused("a.txt::$DATA", /contains ":"/);
  assertRefused("docs/a:b", /contains ":"/);
  for (const c of ["<", ">", '"', "|", "?", "*"]) {
    assertRefused(
      `a${c}b.txt`,
      new RegExp(
        `contains ${escape(JSON.stringify(c))}, which Windows forbids$`,
      ),
    );
  }
  // Control characters stay refused as before, everywhere in the name.
  assertRefused("a\u0001b", /NUL or control/);
  assertRefused("dir\u001f/a.txt", /NUL or control/);
});

Deno.test("validateName refuses a trailing dot or space in any segment", () => {
  assertRefused(
    "a.txt.",
    /^Cannot accept name "a.txt.": segment "a.txt." ends with a dot, which Windows drops$/,
  );
  assertRefused("a.txt ", /segment "a.txt " ends with a space/);
  assertRefused("docs./a.txt", /segment "docs." ends with a dot/);
  assertRefused("docs /a.txt", /segment "docs " ends with a space/);
  assertRefused("...", /ends with a dot/);
});

Deno.test("validateName still accepts names that only look like devices", () => {
  for (
    const name of [
      "console.txt",
      "CONFIG",
      "nully",
      "com10",
      "COM0",
      "lpt",
      "auxiliary/a.txt",
      "my.con",
      "a.nul.txt",
      "docs/con-notes.md",
      " leading space.txt",
      "..dots",
      "a. b",
    ]
  ) {
    assert.equal(validateName(name), name);
  }
});

Deno.test("validateName says what failed and the value on one line", () => {
  for (const name of ["CON", "a:b", "x.", "a\nb", "e\u0301/nul.txt"]) {
    try {
      validateName(name);
      assert.fail(`${JSON.stringify(name)} was accepted`);
    } catch (error) {
      assert.ok(error instanceof ProtocolError);
      assert.ok(!error.message.includes("\n"), error.message);
      assert.match(error.message, /^Cannot accept name "/);
      assert.ok(error.message.includes(JSON.stringify(name)), error.message);
    }
  }
});

Deno.test("validateName refuses values that are not strings", () => {
  for (const value of [undefined, null, 42, {}, ["a.txt"], true]) {
    assertRefused(value, /expected a string/);
  }
});

Deno.test("isInside tells a directory's contents from a sibling with a common prefix", () => {
  assert.ok(isInside("/srv/share", "/srv/share"));
  assert.ok(isInside("/srv/share", "/srv/share/a/b.txt"));
  assert.ok(!isInside("/srv/share", "/srv/shared/a.txt"));
  assert.ok(!isInside("/srv/share", "/srv/share/../x"));
  assert.ok(!isInside("/srv/share", "/etc/passwd"));
});

/** A temp root and a temp directory outside it, removed on dispose. */
async function tempLayout(): Promise<
  { root: string; outside: string } & AsyncDisposable
> {
  const root = await Deno.makeTempDir({ prefix: "shoal_names_root_" });
  const outside = await Deno.makeTempDir({ prefix: "shoal_names_out_" });
  await Deno.writeTextFile(join(outside, "secret.txt"), "secret");
  return {
    root,
    outside,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
      await Deno.remove(outside, { recursive: true });
    },
  };
}

Deno.test("resolveForRead refuses a symlink that points outside the root", async () => {
  await using dirs = await tempLayout();
  await Deno.symlink(
    join(dirs.outside, "secret.txt"),
    join(dirs.root, "link.txt"),
  );
  await Deno.symlink(dirs.outside, join(dirs.root, "outdir"));
  await assert.rejects(
    resolveForRead(dirs.root, "link.txt"),
    (error: unknown) =>
      error instanceof ProtocolError &&
      /resolves outside the shared directory/.test(error.message),
  );
  await assert.rejects(
    resolveForRead(dirs.root, "outdir/secret.txt"),
    ProtocolError,
  );
});

Deno.test("resolveForRead follows a symlink that stays inside the root", async () => {
  await using dirs = await tempLayout();
  await Deno.mkdir(join(dirs.root, "real"));
  await Deno.writeTextFile(join(dirs.root, "real", "a.txt"), "inside");
  await Deno.symlink(
    join(dirs.root, "real", "a.txt"),
    join(dirs.root, "alias.txt"),
  );
  await Deno.symlink(join(dirs.root, "real"), join(dirs.root, "aliasdir"));
  const realFile = await Deno.realPath(join(dirs.root, "real", "a.txt"));
  assert.equal(await resolveForRead(dirs.root, "alias.txt"), realFile);
  assert.equal(await resolveForRead(dirs.root, "aliasdir/a.txt"), realFile);
  assert.equal(await resolveForRead(dirs.root, "real/a.txt"), realFile);
});

Deno.test("resolveForRead refuses invalid names and reports missing files", async () => {
  await using dirs = await tempLayout();
  await assert.rejects(
    resolveForRead(dirs.root, "../secret.txt"),
    ProtocolError,
  );
  await assert.rejects(
    resolveForRead(dirs.root, "nope.txt"),
    Deno.errors.NotFound,
  );
});

Deno.test("resolveForWrite refuses a path through a symlinked directory leading outside", async () => {
  await using dirs = await tempLayout();
  await Deno.symlink(dirs.outside, join(dirs.root, "outdir"));
  await assert.rejects(
    resolveForWrite(dirs.root, "outdir/new.txt"),
    (error: unknown) =>
      error instanceof ProtocolError &&
      /symlink on its path leads outside/.test(error.message),
  );
  await assert.rejects(
    resolveForWrite(dirs.root, "outdir/sub/new.txt"),
    ProtocolError,
  );
  // Nothing was created outside.
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(dirs.outside))).map((e) => e.name),
    ["secret.txt"],
  );
});

Deno.test("resolveForWrite refuses a target that is itself a symlink", async () => {
  await using dirs = await tempLayout();
  await Deno.writeTextFile(join(dirs.root, "inside.txt"), "x");
  await Deno.symlink(
    join(dirs.outside, "secret.txt"),
    join(dirs.root, "out.txt"),
  );
  await Deno.symlink(
    join(dirs.root, "inside.txt"),
    join(dirs.root, "in.txt"),
  );
  await assert.rejects(resolveForWrite(dirs.root, "out.txt"), ProtocolError);
  // Even a symlink inside the root: writing through it would clobber its
  // target under another name.
  await assert.rejects(resolveForWrite(dirs.root, "in.txt"), ProtocolError);
});

Deno.test("resolveForWrite accepts new paths and symlinked directories inside the root", async () => {
  await using dirs = await tempLayout();
  const realRoot = await Deno.realPath(dirs.root);
  assert.equal(
    await resolveForWrite(dirs.root, "docs/new.txt"),
    join(realRoot, "docs", "new.txt"),
  );
  await Deno.mkdir(join(dirs.root, "real"));
  await Deno.symlink(join(dirs.root, "real"), join(dirs.root, "alias"));
  const path = await resolveForWrite(dirs.root, "alias/new.txt");
  assert.ok(isInside(realRoot, path), `${path} is outside ${realRoot}`);
  await assert.rejects(resolveForWrite(dirs.root, "a/../../x"), ProtocolError);
});

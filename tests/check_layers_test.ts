/**
 * The layer check of `deno task check`: it passes on a clean tree and fails
 * on an upward import, an import between two folders of one layer, and a
 * cycle.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, runDeno, tempDir } from "./_helpers.ts";

const SCRIPT = join(ROOT, "scripts/check_layers.ts");

async function checkTree(files: Record<string, string>) {
  await using dir = await tempDir();
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(join(dir.path, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir.path, path), text);
  }
  return await runDeno(["run", "--allow-read", SCRIPT, dir.path]);
}

Deno.test("Layer check passes on the repository", async () => {
  const result = await runDeno(["run", "--allow-read", SCRIPT]);
  assert.equal(result.code, 0, result.stderr);
});

Deno.test("Layer check fails on an upward import, a same-layer import and a cycle", async () => {
  const clean = await checkTree({
    "lib/content/a.ts": "export const a = 1;\n",
    "lib/net/b.ts":
      'import { a } from "../content/a.ts";\nexport const b = a;\n',
  });
  assert.equal(clean.code, 0, clean.stderr);

  const upward = await checkTree({
    "lib/content/a.ts":
      'import { b } from "../net/b.ts";\nexport const a = b;\n',
    "lib/net/b.ts": "export const b = 1;\n",
  });
  assert.equal(upward.code, 1);
  assert.match(
    upward.stderr,
    /content\/a\.ts imports lib\/net\/b\.ts: content \(layer 1\) is below net/,
  );

  const sideways = await checkTree({
    "lib/share/a.ts":
      'import { b } from "../tracker/b.ts";\nexport const a = b;\n',
    "lib/tracker/b.ts": "export const b = 1;\n",
  });
  assert.equal(sideways.code, 1);
  assert.match(sideways.stderr, /on the same layer/);

  const cycle = await checkTree({
    "lib/net/a.ts":
      'import { b } from "./b.ts";\nexport const a = 1;\nexport const c = b;\n',
    "lib/net/b.ts": 'import { a } from "./a.ts";\nexport const b = a;\n',
  });
  assert.equal(cycle.code, 1);
  assert.match(
    cycle.stderr,
    /import cycle: lib\/net\/a\.ts -> lib\/net\/b\.ts -> lib\/net\/a\.ts/,
  );
});

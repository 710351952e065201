/**
 * Every export in deno.json is safe to import: in a fresh process with no
 * permissions, importing it neither exits with an error nor prints.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "./_helpers.ts";

const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
const exportsMap: Record<string, string> = config.exports;

for (const [subpath, file] of Object.entries(exportsMap)) {
  Deno.test(`Importing export "${subpath}" (${file}) neither exits nor prints`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const main = join(dir, "import_only.ts");
      const url = pathToFileURL(join(ROOT, file)).href;
      await Deno.writeTextFile(main, `import ${JSON.stringify(url)};\n`);
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--no-prompt",
          "--config",
          join(ROOT, "deno.json"),
          main,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      const stdout = decoder.decode(output.stdout);
      const stderr = decoder.decode(output.stderr);
      assert.equal(output.code, 0, `exit code ${output.code}: ${stderr}`);
      assert.equal(stdout, "", "printed to stdout on import");
      assert.equal(stderr, "", "printed to stderr on import");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/**
 * `deno task compile` as a user runs it: when a target cannot be built (here
 * its runtime base cannot be downloaded, through a proxy that refuses every
 * connection) the task exits 1 and says which target failed and why.
 *
 * @module
 */
import assert from "node:assert/strict";
import { freePort, ROOT } from "../_helpers.ts";

Deno.test("deno task compile exits 1 with the reason when a target fails", async () => {
  const target = "aarch64-apple-darwin";
  // Every download goes through a proxy on a closed port: refused at once,
  // on any machine, network or not.
  const proxy = `http://127.0.0.1:${freePort()}`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "compile", "--target", target],
    cwd: ROOT,
    env: {
      NO_COLOR: "1",
      HTTPS_PROXY: proxy,
      HTTP_PROXY: proxy,
      https_proxy: proxy,
      http_proxy: proxy,
      NO_PROXY: "",
      no_proxy: "",
    },
    stdin: "null",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const decoder = new TextDecoder();
  const stdout = decoder.decode(output.stdout);
  const stderr = decoder.decode(output.stderr);
  if (/^Built 2 of 2 executables/m.test(stdout)) {
    // A runtime base already in Deno's cache needs no download: then the
    // build succeeds, and success is exit 0.
    assert.equal(output.code, 0, stderr);
    return;
  }
  assert.equal(output.code, 1, `${stdout}\n${stderr}`);
  const failed = new RegExp(`^\\s*FAILED\\s+${target}\\s+(.+)$`, "m").exec(
    stdout,
  );
  assert.ok(failed, `a FAILED line for ${target}:\n${stdout}`);
  assert.match(failed[1]!, /runtime base|denort|connect|proxy|refused/i);
  assert.match(stdout, /^Built 0 of 2 executables/m);
  assert.match(stderr, /^compile: 2 of 2 executables were not built/m);
});

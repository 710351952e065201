/**
 * The README's commands run as written: every command in its shell code
 * blocks names a task `deno.json` has, files that exist, and flags, argument
 * counts and values the real CLIs accept (`tests/_readme.ts`); its quick start
 * (`deno task demo`) is run; its links and inline `deno task` names resolve.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CommandChecker,
  type Finding,
  inlineTasks,
  localLinks,
  shellCommands,
} from "./_readme.ts";
import { ROOT } from "./_helpers.ts";

const readme = await Deno.readTextFile(join(ROOT, "README.md"));
const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
const tasks: Record<string, string> = config.tasks;
/** The Deno version CI installs (`.ci/run`), which the README may pin. */
const denoVersion = /deno@(\d+\.\d+\.\d+)/.exec(
  await Deno.readTextFile(join(ROOT, ".ci", "run")),
)?.[1];

function report(findings: Finding[]): string {
  return findings.map((f) =>
    `README.md:${f.line}: ${f.command}\n  ${f.problem}`
  ).join("\n");
}

Deno.test("README: every command in its shell code blocks is accepted by the real programs", async () => {
  const commands = shellCommands(readme);
  // The quick start, the tracker, the peer and a one-shot command at least.
  assert.ok(commands.length >= 10, `only ${commands.length} commands found`);
  const findings = await new CommandChecker(tasks, denoVersion).check(
    commands,
  );
  assert.equal(findings.length, 0, `\n${report(findings)}`);
});

Deno.test("README: its inline deno task names and local links exist", async () => {
  const missingTasks = inlineTasks(readme).filter((name) => !(name in tasks));
  assert.deepEqual(missingTasks, [], "tasks deno.json does not have");
  const missing: string[] = [];
  for (const link of localLinks(readme)) {
    try {
      await Deno.stat(join(ROOT, link));
    } catch {
      missing.push(link);
    }
  }
  assert.deepEqual(missing, [], "links to files that do not exist");
});

Deno.test("README: the quick start's deno task demo passes", async () => {
  assert.ok(
    shellCommands(readme).some((c) => c.words.join(" ") === "deno task demo"),
    "the README no longer shows deno task demo",
  );
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "demo"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = new TextDecoder().decode(result.stdout) +
    new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, text);
  assert.match(text, /^Demo passed/m);
});

Deno.test("README checker: flags a missing task, file, option, value or argument", async () => {
  const broken = [
    "# a comment, then commands the checker must refuse",
    "```sh",
    "deno task nosuchtask",
    "deno task peer --tracker localhost:9000 --no-such-flag",
    "deno task peer --daemon --shared fixtures/nope",
    "deno task tracker --interval soon",
    "deno task peer download --tracker localhost:9000",
    "deno task peer list a b --tracker localhost:9000",
    "deno run --allow-net nosuch.ts",
    "npx -y deno@0.0.1 task demo",
    "frobnicate --now",
    "```",
    "```sh",
    "deno task peer download photo.bin \\",
    "  --tracker localhost:9000 --out /tmp/x   # fine: continued, commented",
    "deno task tracker --port 9000 && deno task compile --target nosuch-target",
    "```",
  ].join("\n");
  const findings = await new CommandChecker(tasks, "2.9.6").check(
    shellCommands(broken),
  );
  const byLine = new Map<number, string[]>();
  for (const f of findings) {
    byLine.set(f.line, [...byLine.get(f.line) ?? [], f.problem]);
  }
  const expect = (line: number, pattern: RegExp) =>
    assert.ok(
      byLine.get(line)?.some((p) => pattern.test(p)),
      `line ${line}: expected ${pattern}, got ${
        JSON.stringify(byLine.get(line))
      }`,
    );
  expect(3, /no task "nosuchtask"/);
  expect(4, /has no option --no-such-flag/);
  expect(5, /--shared fixtures\/nope: no such directory/);
  expect(6, /--interval soon: Invalid duration/);
  expect(7, /needs 1 argument\(s\), got 0/);
  expect(8, /takes at most 1 argument\(s\), got 2/);
  expect(9, /nosuch\.ts is not a file/);
  expect(10, /pins deno@0\.0\.1/);
  expect(11, /unknown program frobnicate/);
  assert.equal(byLine.get(14), undefined, "a continued command is fine");
  expect(16, /does not mention nosuch-target/);
  assert.equal(byLine.size, 10, report(findings));
});

/**
 * Private helper for scripts and tests: the permission flags of the
 * `deno.json` tasks, which are the one place those flags live.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (absolute path). */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/**
 * Reads the flags of a `deno run` task from deno.json:
 * `"deno run --allow-net tracker.ts"` gives `["--allow-net"]`.
 *
 * @param task Task name, e.g. `tracker` or `peer`.
 * @param config The parsed deno.json (read from the repository by default).
 * @returns The flags between `deno run` and the script.
 * @throws {Error} If the task is missing or not a `deno run` command.
 */
export function taskFlags(
  task: string,
  config: Record<string, unknown> = JSON.parse(
    Deno.readTextFileSync(join(ROOT, "deno.json")),
  ),
): string[] {
  const command = (config.tasks as Record<string, unknown> | undefined)?.[task];
  const words = typeof command === "string" ? command.split(/\s+/) : [];
  const run = words.indexOf("run");
  if (words[0] !== "deno" || run < 0) {
    throw new Error(
      `Cannot read the "${task}" task from deno.json: expected "deno run ...", got ${
        JSON.stringify(command)
      }`,
    );
  }
  const flags: string[] = [];
  for (const word of words.slice(run + 1)) {
    if (!word.startsWith("-")) break;
    flags.push(word);
  }
  return flags;
}

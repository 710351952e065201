/**
 * Keeps the imports of `lib/` pointing one way: fails on an import from a
 * lower layer into a higher one, between two folders of the same layer, from
 * `lib/` into an entrypoint, and on any import cycle between files.
 *
 * Run by `deno task check`; the layers are listed in ARCHITECTURE.md.
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Layers from the bottom up; a folder may import only from lower ranks. */
const RANKS: Record<string, number> = {
  errors: 0,
  events: 0,
  content: 1,
  net: 2,
  protocol: 3,
  tracker: 4,
  share: 4,
  download: 5,
  peer: 6,
  dashboard: 7,
  cli: 8,
};

/** The repository root, or the directory given as the first argument. */
const ROOT = resolve(
  Deno.args[0] ?? join(dirname(fileURLToPath(import.meta.url)), ".."),
);
const LIB = join(ROOT, "lib");

function layerOf(path: string): string {
  const rel = relative(LIB, path).split("\\").join("/");
  if (!rel.includes("/")) return rel.replace(/\.ts$/, "");
  return rel.slice(0, rel.indexOf("/"));
}

async function libFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) found.push(...await libFiles(path));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found.sort();
}

/** Relative module specifiers of a file's imports and re-exports (doc examples excluded). */
function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "");
  const found: string[] = [];
  const pattern =
    /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
  for (const match of code.matchAll(pattern)) found.push(match[1] ?? match[2]!);
  return found;
}

const problems: string[] = [];
const graph = new Map<string, string[]>();
for (const file of await libFiles(LIB)) {
  const from = layerOf(file);
  const fromRank = RANKS[from];
  if (fromRank === undefined) {
    problems.push(
      `${
        relative(ROOT, file)
      }: folder "${from}" has no layer in scripts/check_layers.ts`,
    );
    continue;
  }
  const targets: string[] = [];
  for (const specifier of importsOf(await Deno.readTextFile(file))) {
    const target = resolve(dirname(file), specifier);
    const where = `${relative(ROOT, file)} imports ${relative(ROOT, target)}`;
    if (!target.startsWith(LIB + "/")) {
      problems.push(`${where}: lib/ never imports an entrypoint or script`);
      continue;
    }
    targets.push(target);
    const to = layerOf(target);
    if (to === from) continue;
    const toRank = RANKS[to];
    if (toRank === undefined) continue; // Reported for that file itself.
    if (toRank > fromRank) {
      problems.push(`${where}: ${from} (layer ${fromRank}) is below ${to}`);
    } else if (toRank === fromRank) {
      problems.push(
        `${where}: ${from} and ${to} are on the same layer: one must not import the other`,
      );
    }
  }
  graph.set(file, targets);
}

// Cycles between files, found by depth-first search.
const state = new Map<string, "open" | "done">();
const stack: string[] = [];
const visit = (file: string) => {
  state.set(file, "open");
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (state.get(next) === "open") {
      const cycle = stack.slice(stack.indexOf(next)).concat(next);
      problems.push(
        `import cycle: ${cycle.map((f) => relative(ROOT, f)).join(" -> ")}`,
      );
    } else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(file, "done");
};
for (const file of graph.keys()) if (!state.has(file)) visit(file);

if (problems.length > 0) {
  console.error(
    `Layer check failed (${problems.length}):\n  ${problems.join("\n  ")}`,
  );
  Deno.exit(1);
}
console.log(`Layer check: ${graph.size} files in lib/, imports point down.`);

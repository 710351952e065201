/**
 * `deno task compile [--target <triple>]`: builds self-contained `tracker`
 * and `peer` executables into dist/ with `deno compile`, one pair per target,
 * each with exactly the permission flags of its deno.json task.
 *
 * `deno compile` downloads a runtime base (`denort`) per target. The task
 * exits 0 only when every executable asked for was built; otherwise it exits
 * 1, and each target that failed gets a line with the reason (a runtime base
 * that could not be downloaded is named as such, with how to supply one). The embedded npm packages
 * are only those the entrypoint imports: each build uses a generated config
 * in dist/ that keeps deno.json's compiler options and just those imports.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { taskFlags } from "./_tasks.ts";

/** Targets `deno compile` supports. */
const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;
/** Entrypoints, each built with the permission flags of its task. */
const ENTRIES = ["tracker", "peer"] as const;
/** Bound on one build (type check, download of the base, write). */
const BUILD_TIMEOUT_MS = 10 * 60_000;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = join(ROOT, "dist");
const DENO = Deno.execPath();

/** What one build did. */
type Outcome =
  | { kind: "built"; path: string; size: number }
  | { kind: "offline"; reason: string }
  | { kind: "failed"; reason: string };

/** A wrong command line; the message says which argument and why. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const USAGE = `Usage: deno task compile [--target <triple>]...

Builds dist/shoal-tracker-<triple> and dist/shoal-peer-<triple> (.exe on
Windows) for every target, or only the ones given:
  ${TARGETS.join("\n  ")}`;

function parseArgs(args: string[]): string[] {
  const targets: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    let value: string | undefined;
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      Deno.exit(0);
    } else if (arg === "--target") {
      value = args[++i];
    } else if (arg.startsWith("--target=")) {
      value = arg.slice("--target=".length);
    } else {
      throw new UsageError(`Unknown argument "${arg}"`);
    }
    if (!value || !(TARGETS as readonly string[]).includes(value)) {
      throw new UsageError(
        `Invalid --target "${value ?? ""}": use one of ${TARGETS.join(", ")}`,
      );
    }
    if (!targets.includes(value)) targets.push(value);
  }
  return targets.length > 0 ? targets : [...TARGETS];
}

function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

async function run(
  args: string[],
): Promise<{ success: boolean; stdout: string; stderr: string }> {
  const output = await new Deno.Command(DENO, {
    args,
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(BUILD_TIMEOUT_MS),
  }).output();
  const decoder = new TextDecoder();
  return {
    success: output.success,
    stdout: decoder.decode(output.stdout),
    stderr: stripAnsi(decoder.decode(output.stderr)),
  };
}

/**
 * Writes a config for one entrypoint: deno.json's compiler options and only
 * the imports its module graph uses, so the executable embeds no other npm
 * package. Lives in dist/ so embedded paths stay relative to the repo.
 */
async function writeEntryConfig(
  config: Record<string, unknown>,
  entry: string,
): Promise<string> {
  const info = await run(["info", "--json", `${entry}.ts`]);
  if (!info.success) {
    throw new Error(
      `Cannot resolve the module graph of ${entry}.ts: ${
        info.stderr.trim().split("\n")[0]
      }`,
    );
  }
  const graph = JSON.parse(info.stdout) as {
    modules: { kind?: string; specifier: string }[];
  };
  const used = new Set(
    graph.modules.filter((m) => m.kind === "npm").map((m) =>
      m.specifier.replace(/^npm:\/?/, "").replace(/@[^@/]*$/, "")
    ),
  );
  const imports = Object.fromEntries(
    Object.entries((config.imports ?? {}) as Record<string, string>).filter((
      [, target],
    ) =>
      target.startsWith("npm:") &&
      used.has(target.slice(4).replace(/@[^@/]*$/, ""))
    ),
  );
  const path = join(DIST, `.${entry}.compile.json`);
  await Deno.writeTextFile(
    path,
    JSON.stringify({ imports, compilerOptions: config.compilerOptions ?? {} }),
  );
  return path;
}

/**
 * The last two "N: cause" lines of a Deno error report, joined, or else its
 * first error line.
 */
function rootCause(stderr: string): string {
  const chain = stderr.split(/^Stack backtrace:/m)[0]!.split(/^Caused by:/m)[1];
  const causes = [...(chain ?? "").matchAll(/^\s*\d+: (.+)$/gm)].map((m) =>
    m[1]!
  );
  const errors = stderr.split("\n").filter((line) =>
    /^error: |\[ERROR\]/.test(line)
  );
  const line = causes.length > 0
    ? causes.slice(-2).join(": ")
    : errors[0] ?? stderr.trim().split("\n")[0] ?? "";
  return line.replace(/^error: /, "").trim() || "no error output";
}

async function build(
  entry: string,
  target: string,
  flags: string[],
  configPath: string,
): Promise<Outcome> {
  const path = join(
    DIST,
    `shoal-${entry}-${target}${target.includes("windows") ? ".exe" : ""}`,
  );
  const result = await run([
    "compile",
    "--config",
    configPath,
    "--no-lock",
    ...flags,
    // The peer serves its dashboard page from web/: embed those files.
    ...(entry === "peer" ? ["--include", "web/"] : []),
    "--target",
    target,
    "--output",
    path,
    `${entry}.ts`,
  ]);
  if (result.success) {
    return { kind: "built", path, size: (await Deno.stat(path)).size };
  }
  const download = /error sending request for url \((\S*denort[^)\s]*)\)/.exec(
    result.stderr,
  ) ?? /(\S*denort\S*\.zip)[\s\S]*(?:status|failed|error)/i.exec(
    result.stderr,
  );
  if (download) {
    const file = download[1]!.split("/").at(-1);
    return {
      kind: "offline",
      reason: `cannot download the runtime base ${file}: ${
        rootCause(result.stderr)
      }`,
    };
  }
  return { kind: "failed", reason: rootCause(result.stderr) };
}

function formatSize(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

async function main(): Promise<number> {
  const targets = parseArgs(Deno.args);
  const config = JSON.parse(
    await Deno.readTextFile(join(ROOT, "deno.json")),
  ) as Record<string, unknown>;
  const flags = Object.fromEntries(
    ENTRIES.map((entry) => [entry, taskFlags(entry, config)]),
  );
  await Deno.mkdir(DIST, { recursive: true });
  console.log(
    `Compiling ${
      ENTRIES.map((e) => `${e}.ts (${flags[e]!.join(" ")})`).join(
        " and ",
      )
    } for ${targets.length} target${
      targets.length === 1 ? "" : "s"
    } into dist/`,
  );
  const configs: string[] = [];
  let built = 0;
  let offline = 0;
  let failed = 0;
  try {
    const configFor: Record<string, string> = {};
    for (const entry of ENTRIES) {
      configFor[entry] = await writeEntryConfig(config, entry);
      configs.push(configFor[entry]);
    }
    const width = Math.max(...targets.map((t) => t.length));
    for (const target of targets) {
      const outcomes: [string, Outcome][] = [];
      for (const entry of ENTRIES) {
        const previous = outcomes.at(-1)?.[1];
        // The base is per target: if it could not be downloaded for one
        // entrypoint, it cannot for the next.
        const outcome = previous?.kind === "offline"
          ? previous
          : await build(entry, target, flags[entry]!, configFor[entry]!);
        outcomes.push([entry, outcome]);
        if (outcome.kind === "built") built++;
        else if (outcome.kind === "offline") offline++;
        else failed++;
      }
      const label = target.padEnd(width);
      const bad = outcomes.filter(([, o]) => o.kind !== "built");
      if (bad.length === 0) {
        console.log(
          `  ok       ${label}  ${
            outcomes.map(([, o]) =>
              o.kind === "built"
                ? `dist/${o.path.split(/[\\/]/).at(-1)} (${formatSize(o.size)})`
                : ""
            ).join(", ")
          }`,
        );
        continue;
      }
      const status = "FAILED ";
      const reasons = new Set(
        bad.map(([, o]) => o.kind === "built" ? "" : o.reason),
      );
      const detail = reasons.size === 1
        ? `${bad.map(([e]) => e).join(" and ")}: ${[...reasons][0]}`
        : bad.map(([e, o]) => `${e}: ${o.kind === "built" ? "" : o.reason}`)
          .join("; ");
      console.log(`  ${status}  ${label}  ${detail}`);
    }
  } finally {
    for (const path of configs) await Deno.remove(path).catch(() => {});
  }
  const total = targets.length * ENTRIES.length;
  console.log(
    `Built ${built} of ${total} executables${
      offline > 0
        ? `; ${offline} failed because the runtime base could not be downloaded (offline? DENORT_BIN=/path/to/denort supplies one)`
        : ""
    }${failed > 0 ? `; ${failed} failed` : ""}.`,
  );
  if (built < total) {
    console.error(
      `compile: ${
        total - built
      } of ${total} executables were not built (see the FAILED lines above)`,
    );
    return 1;
  }
  return 0;
}

try {
  Deno.exit(await main());
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`compile: ${message}`);
  if (error instanceof UsageError) console.error(USAGE);
  Deno.exit(error instanceof UsageError ? 2 : 1);
}

/**
 * Which paths under a shared directory are never shared: the peer's own
 * partial downloads always, hidden files unless asked, and `.shoalignore`.
 *
 * @module
 */
import ignore, { type Ignore } from "ignore";
import { join } from "node:path";

/** Name of the gitignore-style rules file read from the shared root. */
export const IGNORE_FILE_NAME = ".shoalignore";

/**
 * Suffixes of the peer's own working files (a download in progress and its
 * resume state): never shared, whatever the rules say.
 */
export const ALWAYS_IGNORED_SUFFIXES: readonly string[] = [
  ".part",
  ".part.state",
];

/** Options for {@linkcode IgnoreRules.load}. */
export interface IgnoreRulesOptions {
  /**
   * Share files and folders whose name starts with a dot.
   *
   * @default {false}
   */
  includeHidden?: boolean;
  /** Extra gitignore-style patterns, applied after `.shoalignore`. */
  patterns?: readonly string[];
}

/**
 * Decides whether a relative POSIX name is left out of a share.
 *
 * @example Hidden files, parts and patterns
 * ```ts
 * import { IgnoreRules } from "@shoal/shoal/share";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/.shoalignore`, "*.log\n");
 * const rules = await IgnoreRules.load(root);
 * if (!rules.ignores("build.log", false)) throw new Error("pattern ignored");
 * if (!rules.ignores(".env", false)) throw new Error("hidden file shared");
 * if (!rules.ignores("movie.mkv.part", false)) throw new Error("part shared");
 * if (rules.ignores("notes.txt", false)) throw new Error("plain file ignored");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class IgnoreRules {
  /** Whether hidden names are shared. */
  readonly includeHidden: boolean;
  /** The patterns in force (`.shoalignore` lines, then extra ones). */
  readonly patterns: readonly string[];
  readonly #matcher: Ignore;

  /**
   * Creates rules from patterns (no file is read).
   *
   * @param patterns Gitignore-style lines.
   * @param includeHidden Whether hidden names are shared.
   */
  constructor(patterns: readonly string[] = [], includeHidden = false) {
    this.includeHidden = includeHidden;
    this.patterns = patterns;
    this.#matcher = ignore().add([...patterns]);
  }

  /**
   * Reads `.shoalignore` from a shared root (a missing file means no
   * patterns) and combines it with the options.
   *
   * @param root The shared directory.
   * @param options Hidden files and extra patterns.
   * @returns The rules.
   */
  static async load(
    root: string,
    options: IgnoreRulesOptions = {},
  ): Promise<IgnoreRules> {
    let lines: string[] = [];
    try {
      lines = (await Deno.readTextFile(join(root, IGNORE_FILE_NAME)))
        .split(/\r?\n/);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return new IgnoreRules(
      [...lines, ...(options.patterns ?? [])],
      options.includeHidden ?? false,
    );
  }

  /**
   * Whether a name is left out of the share.
   *
   * @param name Relative POSIX name (already validated).
   * @param isDirectory Whether it names a directory (for `dir/` patterns).
   * @returns `true` if ignored.
   */
  ignores(name: string, isDirectory: boolean): boolean {
    if (
      !isDirectory &&
      (name === IGNORE_FILE_NAME ||
        ALWAYS_IGNORED_SUFFIXES.some((s) => name.endsWith(s)))
    ) {
      return true;
    }
    if (!this.includeHidden && name.split("/").some((s) => s.startsWith("."))) {
      return true;
    }
    if (this.patterns.length === 0) return false;
    return this.#matcher.ignores(isDirectory ? `${name}/` : name);
  }
}

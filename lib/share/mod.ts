/**
 * A peer's shared directory: the index of its files and their manifests (with
 * a hash cache that survives restarts), `.shoalignore` rules, and a watcher
 * that rescans when files change.
 *
 * @example Indexing a directory
 * ```ts
 * import { ShareIndex } from "@shoal/shoal/share";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "hello");
 * const index = await ShareIndex.open({ root });
 * if (index.byName("a.txt")?.size !== 5) throw new Error("not indexed");
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */
export {
  diffAnnouncements,
  type ScanProgress,
  type SettledCheck,
  type SharedFile,
  ShareIndex,
  type ShareIndexOptions,
  type UpdateResult,
} from "./share.ts";
export {
  ShareWatcher,
  type ShareWatcherEventMap,
  type ShareWatcherOptions,
} from "./watch.ts";
export {
  IGNORE_FILE_NAME,
  IgnoreRules,
  type IgnoreRulesOptions,
} from "./ignore.ts";

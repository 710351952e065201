/**
 * Private name index for the tracker's `list` queries: names kept sorted
 * case-insensitively, by whole path and by base name, so a glob with a
 * literal start (`peer-7/*`, `report*`) reads only the names in its range;
 * any other query is a scan bounded by a cap on the names it examines.
 *
 * @module
 */

/** Entries per chunk of a {@linkcode SortedStrings} before it splits. */
const CHUNK = 512;

/**
 * Distinct strings in ascending order of a sort key (UTF-16 code units; by
 * default the string itself), kept in chunks: add, delete and finding a
 * lower bound cost O(log n + chunk + n / chunk). A key computed on the fly
 * costs no memory per string.
 */
export class SortedStrings {
  readonly #chunks: string[][] = [];
  readonly #key: (value: string) => string;
  #size = 0;

  /**
   * Creates an empty set.
   *
   * @param key The sort key of a string (distinct strings, distinct keys).
   */
  constructor(key: (value: string) => string = (value) => value) {
    this.#key = key;
  }

  /** Number of strings held. */
  get size(): number {
    return this.#size;
  }

  /** Index of the first chunk whose last key is `>= key`. */
  #chunkFor(key: string): number {
    let lo = 0;
    let hi = this.#chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.#chunks[mid]!;
      if (this.#key(chunk[chunk.length - 1]!) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first string of `array` whose key is `>= key`. */
  #lowerBound(array: readonly string[], key: string): number {
    let lo = 0;
    let hi = array.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#key(array[mid]!) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Adds a string.
   *
   * @param value The string.
   * @returns Whether it was new.
   */
  add(value: string): boolean {
    if (this.#chunks.length === 0) {
      this.#chunks.push([value]);
      this.#size = 1;
      return true;
    }
    const key = this.#key(value);
    const c = Math.min(this.#chunkFor(key), this.#chunks.length - 1);
    const chunk = this.#chunks[c]!;
    const i = this.#lowerBound(chunk, key);
    if (chunk[i] === value) return false;
    chunk.splice(i, 0, value);
    this.#size++;
    if (chunk.length > 2 * CHUNK) {
      this.#chunks.splice(c + 1, 0, chunk.splice(CHUNK));
    }
    return true;
  }

  /**
   * Deletes a string.
   *
   * @param value The string.
   * @returns Whether it was there.
   */
  delete(value: string): boolean {
    const key = this.#key(value);
    const c = this.#chunkFor(key);
    const chunk = this.#chunks[c];
    if (!chunk) return false;
    const i = this.#lowerBound(chunk, key);
    if (chunk[i] !== value) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(c, 1);
    return true;
  }

  /**
   * The strings whose key is `>= start`, ascending. Do not change the set
   * while iterating.
   *
   * @param start Lower bound of the key (`""`: from the first).
   * @returns The strings.
   */
  *from(start = ""): Generator<string, void, void> {
    let c = this.#chunkFor(start);
    let i = c < this.#chunks.length
      ? this.#lowerBound(this.#chunks[c]!, start)
      : 0;
    for (; c < this.#chunks.length; c++, i = 0) {
      const chunk = this.#chunks[c]!;
      for (; i < chunk.length; i++) yield chunk[i]!;
    }
  }
}

/** How a {@linkcode NameIndex.match} ended. */
export interface MatchResult {
  /** Index entries examined. */
  examined: number;
  /**
   * Every name matching the query was visited (not stopped by the visitor
   * or by the cap on examined entries).
   */
  complete: boolean;
}

/** Separates the lowercased key from the name in an index entry. */
const SEP = "\0";

/**
 * Names indexed for `list` queries: a glob (`*` any run, `?` one character)
 * matches a whole name or its base name, any other query is a substring;
 * both ignore case.
 *
 * @example Finding names by glob
 * ```ts
 * import { NameIndex } from "./_name_index.ts";
 * const index = new NameIndex();
 * index.add("docs/Guide.md");
 * index.add("a.txt");
 * const found: string[] = [];
 * index.match("guide.*", 1000, (name) => found.push(name) > 0);
 * if (found[0] !== "docs/Guide.md") throw new Error("not found");
 * ```
 */
export class NameIndex {
  /**
   * `lower(name) \0 name` for every name, or just the name when it is in
   * lower case already (most are: that costs no memory).
   */
  readonly #full = new SortedStrings();
  /**
   * Names in a folder, ordered by `lower(base name) \0 name` (computed when
   * compared, not stored).
   */
  readonly #base = new SortedStrings(baseKey);

  /** Number of names. */
  get size(): number {
    return this.#full.size;
  }

  /**
   * Indexes a name.
   *
   * @param name A validated name (no NUL).
   */
  add(name: string): void {
    const lower = name.toLowerCase();
    this.#full.add(lower === name ? name : lower + SEP + name);
    if (name.includes("/")) this.#base.add(name);
  }

  /**
   * Forgets a name.
   *
   * @param name The name.
   */
  delete(name: string): void {
    const lower = name.toLowerCase();
    this.#full.delete(lower === name ? name : lower + SEP + name);
    if (name.includes("/")) this.#base.delete(name);
  }

  /**
   * Visits the names matching `query`, examining at most `maxExamined`
   * index entries. A glob with a literal start reads only the names (and
   * base names) that start with it; a glob starting with a wildcard, and a
   * substring query, scan the index.
   *
   * @param query A glob or a substring; `""` matches everything.
   * @param maxExamined Most index entries examined (the work bound).
   * @param visit Called with each match; return `false` to stop.
   * @returns How much was examined and whether every match was visited.
   */
  match(
    query: string,
    maxExamined: number,
    visit: (name: string) => boolean,
  ): MatchResult {
    const needle = query.toLowerCase();
    let examined = 0;
    const glob = /[*?]/.test(needle);
    const wildcard = needle.search(/[*?]/);
    const prefix = glob ? needle.slice(0, wildcard) : "";
    // Whole names in the prefix's range (everything when there is none).
    for (const entry of this.#full.from(prefix)) {
      if (!entry.startsWith(prefix)) break;
      if (examined >= maxExamined) return { examined, complete: false };
      examined++;
      const nul = entry.indexOf(SEP);
      const sep = nul < 0 ? entry.length : nul;
      const hit = glob
        ? globMatch(needle, entry, 0, sep) ||
          globMatch(needle, entry, entry.lastIndexOf("/", sep) + 1, sep)
        : includesBefore(entry, needle, sep);
      if (hit && !visit(nul < 0 ? entry : entry.slice(sep + 1))) {
        return { examined, complete: false };
      }
    }
    // A glob with a literal start also matches base names starting with it;
    // names whose whole path starts with it were seen above. A glob with a
    // slash never matches a base name.
    if (glob && prefix !== "" && !needle.includes("/")) {
      for (const name of this.#base.from(prefix)) {
        const entry = baseKey(name);
        if (!entry.startsWith(prefix)) break;
        if (examined >= maxExamined) return { examined, complete: false };
        examined++;
        const sep = entry.indexOf(SEP);
        if (name.toLowerCase().startsWith(prefix)) continue;
        if (globMatch(needle, entry, 0, sep) && !visit(name)) {
          return { examined, complete: false };
        }
      }
    }
    return { examined, complete: true };
  }
}

/** The sort key of a name in the base-name index. */
function baseKey(name: string): string {
  const lower = name.toLowerCase();
  return lower.slice(lower.lastIndexOf("/") + 1) + SEP + name;
}

function includesBefore(text: string, needle: string, end: number): boolean {
  const at = text.indexOf(needle);
  return at >= 0 && at + needle.length <= end;
}

/**
 * Whether `text[start, end)` matches `pattern` (`*` any run, `?` one
 * character) in O(pattern × text) time: a query from the network can never
 * make the tracker backtrack exponentially, as a regular expression could.
 */
export function globMatch(
  pattern: string,
  text: string,
  start = 0,
  end: number = text.length,
): boolean {
  let p = 0;
  let t = start;
  let star = -1;
  let resume = start;
  while (t < end) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/**
 * Private `list` and seed `list` over the Redis store's name index: names
 * are read page by page from a lexicographic sorted set (a glob with a
 * literal start reads only its range), each matching name's holders are
 * counted by a server-side script, and the reply is bounded like the
 * in-memory store's.
 *
 * @module
 */
import type { ListedFile } from "../protocol/messages.ts";
import { ENTRY_BYTES, jsonBytes, ListTally } from "./_list_tally.ts";
import { globMatch } from "./_name_index.ts";
import { DEFAULT_MAX_LIST_EXAMINED } from "./registry.ts";
import type {
  SearchOptions,
  SearchResult,
  SeedList,
  SeedListOptions,
} from "./store.ts";

/** Entries of the name index read per round trip. */
const PAGE = 256;
/** A `list` query that also matches the content ids it starts. */
const ID_PREFIX = /^[0-9a-fA-F]{8,64}$/;

/** What the search needs of the Redis store. */
export interface NameReader {
  /**
   * A page of live entries: `{examined, last, entries…}` (`ids`: the
   * content id index).
   */
  page(
    index: "lex" | "base" | "ids",
    from: string,
    to: string,
    count: number,
  ): Promise<(string | number)[]>;
  /**
   * What each name holds: its (`id\0size`, live holders) pairs and its
   * live seed-protocol holders.
   */
  tally(
    names: string[],
  ): Promise<{ pairs: [string, number][]; legacy: number }[]>;
  /**
   * Distinct live holders of each id, per size asked; `known` are the
   * holders met under one name per size (the answer when the id has no
   * other holders).
   */
  count(
    ids: string[],
    sizes: string[][],
    known: number[][],
  ): Promise<number[][]>;
  /** Each id's sizes, each with its most common name. */
  contentNames(ids: string[]): Promise<[size: string, name: string][][]>;
  /** Live holder members of a name (a sample of about `want`). */
  sample(name: string, want: number): Promise<string[]>;
  /** A fair sample of addresses. */
  fair(addresses: string[], limit: number): string[];
}

/** A search's result, and the seed `filemap` when asked for. */
export interface NamesResult extends SearchResult {
  /** The seed protocol's list, when `seed` options were given. */
  seed?: SeedList;
}

/**
 * Visits live names matching `query` in index order, a page at a time.
 * `visit` gets each page's matching names and returns `false` to stop.
 */
async function walk(
  reader: NameReader,
  query: string | undefined,
  maxExamined: number,
  visit: (names: string[]) => Promise<boolean>,
): Promise<{ examined: number; complete: boolean }> {
  const needle = (query ?? "").toLowerCase();
  const glob = /[*?]/.test(needle);
  const prefix = glob ? needle.slice(0, needle.search(/[*?]/)) : "";
  let examined = 0;
  const scan = async (
    index: "lex" | "base",
    match: (entry: string, sep: number, name: string) => boolean,
  ): Promise<boolean | undefined> => {
    let from = prefix === "" ? "-" : `[${prefix}`;
    for (;;) {
      const room = maxExamined - examined;
      if (room <= 0) return false;
      const reply = await reader.page(index, from, "+", Math.min(PAGE, room));
      const count = Number(reply[0]);
      const last = String(reply[1]);
      examined += count;
      const names: string[] = [];
      let ended = count < Math.min(PAGE, room) && examined < maxExamined;
      for (const value of reply.slice(2)) {
        const entry = String(value);
        if (!entry.startsWith(prefix)) {
          ended = true;
          break;
        }
        const nul = entry.indexOf("\0");
        const sep = nul < 0 ? entry.length : nul;
        const name = nul < 0 ? entry : entry.slice(sep + 1);
        if (match(entry, sep, name)) names.push(name);
      }
      if (!last.startsWith(prefix)) ended = true;
      if (names.length > 0 && !(await visit(names))) return undefined;
      if (ended || count === 0) return true;
      from = `(${last}`;
    }
  };
  const whole = await scan("lex", (entry, sep) => {
    if (!needle) return true;
    if (!glob) {
      const at = entry.indexOf(needle);
      return at >= 0 && at + needle.length <= sep;
    }
    return globMatch(needle, entry, 0, sep) ||
      globMatch(needle, entry, entry.lastIndexOf("/", sep) + 1, sep);
  });
  if (whole !== true) return { examined, complete: false };
  if (glob && prefix !== "" && !needle.includes("/")) {
    const base = await scan(
      "base",
      (entry, sep, name) =>
        !name.toLowerCase().startsWith(prefix) &&
        globMatch(needle, entry, 0, sep),
    );
    if (base !== true) return { examined, complete: false };
  }
  return { examined, complete: true };
}

/**
 * Files held by live peers, filtered by a query (as `TrackerStore.search`),
 * or with `seed` options the seed protocol's name → holders map.
 *
 * @param reader The store's reads.
 * @param query Substring or glob; everything when absent.
 * @param options The bounds of a search.
 * @param seed The bounds of a seed list (then `query` is ignored).
 * @returns The entries, whether they were cut short, and the cost.
 */
export async function searchNames(
  reader: NameReader,
  query?: string,
  options: SearchOptions = {},
  seed?: SeedListOptions,
): Promise<NamesResult> {
  if (seed) return await seedList(reader, seed);
  const limit = options.limit ?? 10_000;
  const maxBytes = options.maxBytes ?? Infinity;
  const maxExamined = query
    ? options.maxExamined ?? DEFAULT_MAX_LIST_EXAMINED
    : Infinity;
  // "id\0size" → its best matching name and how many hold it under that.
  const met = new ListTally<string>(limit);
  const walked = await walk(reader, query, maxExamined, async (names) => {
    const tallies = await reader.tally(names);
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const tally = tallies[i]!;
      for (const [key, count] of tally.pairs) {
        if (!met.content(key, name, count)) return false;
      }
      if (tally.legacy > 0 && !met.seed(name, tally.legacy)) return false;
    }
    return true;
  });
  // 8 to 64 hex digits also match the content ids they start (bounded).
  let examined = walked.examined;
  let idsComplete = true;
  if (query && ID_PREFIX.test(query)) {
    const prefix = query.toLowerCase();
    let from = `[${prefix}`;
    let scanned = 0;
    for (;;) {
      const room = maxExamined - scanned;
      if (room <= 0) {
        idsComplete = false;
        break;
      }
      const want = Math.min(PAGE, room);
      const reply = await reader.page("ids", from, "+", want);
      const count = Number(reply[0]);
      const last = String(reply[1]);
      scanned += count;
      const ids = reply.slice(2).map(String).filter((id) =>
        id.startsWith(prefix)
      );
      const named = await reader.contentNames(ids);
      ids.forEach((id, i) => {
        for (const [size, name] of named[i]!) {
          if (!met.byId(`${id}\0${size}`, () => name)) return;
        }
      });
      if (met.full || count < want || !last.startsWith(prefix)) break;
      from = `(${last}`;
    }
    examined += scanned;
  }
  // Holders of each (id, size) over every name, counted per id.
  const sizesById = new Map<string, string[]>();
  for (const key of met.found.keys()) {
    const [id, size] = key.split("\0") as [string, string];
    const sizes = sizesById.get(id);
    if (sizes) sizes.push(size);
    else sizesById.set(id, [size]);
  }
  const ids = [...sizesById.keys()];
  const holders = new Map<string, number>();
  for (let i = 0; i < ids.length; i += PAGE) {
    const batch = ids.slice(i, i + PAGE);
    const counts = await reader.count(
      batch,
      batch.map((id) => sizesById.get(id)!),
      batch.map((id) =>
        sizesById.get(id)!.map((size) => met.found.get(`${id}\0${size}`)!.count)
      ),
    );
    batch.forEach((id, k) =>
      sizesById.get(id)!.forEach((size, s) =>
        holders.set(`${id}\0${size}`, counts[k]![s]!)
      )
    );
  }
  const out: ListedFile[] = [];
  let bytes = 0;
  const room = (name: string) => {
    bytes += jsonBytes(name) + ENTRY_BYTES;
    return out.length < limit && bytes <= maxBytes;
  };
  for (const [key, { name }] of met.found) {
    const count = holders.get(key) ?? 0;
    if (count === 0) continue; // every holder expired meanwhile
    if (!room(name)) return { files: out, truncated: true, examined };
    const [id, size] = key.split("\0") as [string, string];
    out.push({ name, id, size: Number(size), holders: count });
  }
  for (const entry of met.legacy) {
    if (!room(entry.name)) return { files: out, truncated: true, examined };
    out.push(entry);
  }
  return {
    files: out,
    truncated: met.full || !walked.complete || !idsComplete,
    examined,
  };
}

async function seedList(
  reader: NameReader,
  options: SeedListOptions,
): Promise<NamesResult> {
  const limit = options.limit ?? 10_000;
  const perName = options.holdersPerName ?? 20;
  const maxBytes = options.maxBytes ?? Infinity;
  const filemap: Record<string, string[]> = {};
  let count = 0;
  let bytes = 2; // {}
  let truncated = false;
  const walked = await walk(reader, undefined, Infinity, async (names) => {
    const members = await Promise.all(
      names.map((name) => reader.sample(name, 2 * perName)),
    );
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const shoal: string[] = [];
      const legacy: string[] = [];
      for (const member of members[i]!) {
        const fields = member.split("\0");
        (fields[0] === "L" ? legacy : shoal).push(fields[1]!);
      }
      const first = reader.fair([...new Set(shoal)], perName);
      const taken = new Set(first);
      const rest = reader.fair(
        [...new Set(legacy)].filter((a) => !taken.has(a)),
        perName - first.length,
      );
      const addresses = [...first, ...rest];
      if (addresses.length === 0) continue;
      if (count >= limit) return !(truncated = true);
      bytes += jsonBytes(name) + 4; // "name":[],
      for (const address of addresses) bytes += address.length + 3; // "a",
      if (bytes > maxBytes) return !(truncated = true);
      filemap[name] = addresses;
      count++;
    }
    return true;
  });
  return {
    files: [],
    truncated: truncated || !walked.complete,
    examined: walked.examined,
    seed: { filemap, truncated },
  };
}

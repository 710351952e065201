/**
 * Private holder sets for the tracker registry: the addresses holding one
 * file, grouped by the network each registered from, and a fair sample of
 * them for a truncated reply.
 *
 * A sample takes one holder from each network in random order, then a second
 * from each, and so on, picking at random inside a network. So one network
 * registering many ports cannot crowd others out of a reply, and no fixed set
 * of addresses sits at its front (registration order means nothing).
 *
 * @module
 */

/**
 * The network an IP address belongs to for per-address limits and fairness:
 * an IPv4 address itself, an IPv6 address's /64 prefix (one host usually
 * holds a whole /64), an IPv4-mapped IPv6 address as IPv4.
 *
 * @param ip The source IP, as `Deno.NetAddr.hostname` gives it.
 * @returns The network key; anything that is not an IPv6 address unchanged.
 *
 * @example
 * ```ts
 * import { networkOf } from "./_holder_set.ts";
 * if (networkOf("2001:db8::1") !== networkOf("2001:db8::2")) throw new Error();
 * if (networkOf("10.0.0.1") === networkOf("10.0.0.2")) throw new Error();
 * ```
 */
export function networkOf(ip: string): string {
  let text = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
  if (!text.includes(":")) return ip;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const halves = text.toLowerCase().split("::");
  if (halves.length > 2) return ip;
  const parts = (half: string | undefined): string[] | undefined => {
    if (!half) return [];
    const out: string[] = [];
    for (const part of half.split(":")) {
      if (part.includes(".")) {
        // Embedded IPv4 (::ffff:1.2.3.4): two hextets.
        const octets = part.split(".").map(Number);
        if (
          octets.length !== 4 ||
          octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)
        ) return undefined;
        out.push(
          (octets[0]! * 256 + octets[1]!).toString(16),
          (octets[2]! * 256 + octets[3]!).toString(16),
        );
      } else if (/^[0-9a-f]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16).toString(16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = parts(halves[0]);
  const tail = parts(halves[1]);
  if (!head || !tail) return ip;
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return ip;
  const hextets = [...head, ...Array<string>(missing).fill("0"), ...tail];
  if (hextets.slice(0, 5).every((h) => h === "0") && hextets[5] === "ffff") {
    const v4 = (parseInt(hextets[6]!, 16) << 16 | parseInt(hextets[7]!, 16)) >>>
      0;
    return [v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255].join(
      ".",
    );
  }
  return `${hextets.slice(0, 4).join(":")}::/64`;
}

/** A holder in a {@linkcode HolderSet}. */
export interface Holder {
  /** The holder's `host:port`. */
  readonly address: string;
  /**
   * Labels it was added with, oldest first (the names it shares a content
   * under); empty for a set added to without labels.
   */
  readonly labels: readonly string[];
}

interface Entry extends Holder {
  labels: string[];
  group: Group;
  /** Index in `group.members`. */
  slot: number;
}

interface Group {
  members: Entry[];
  /** Index in the set's `groups`. */
  slot: number;
  key: string;
}

/**
 * A random permutation of `0 … n-1` drawn one element at a time: a
 * Fisher–Yates shuffle that only swaps what it draws, so taking `k`
 * elements costs O(k), not O(n).
 */
class LazyShuffle {
  readonly #n: number;
  readonly #random: () => number;
  #drawn = 0;
  #moved: Map<number, number> | undefined;

  constructor(n: number, random: () => number) {
    this.#n = n;
    this.#random = random;
  }

  next(): number | undefined {
    const i = this.#drawn;
    if (i >= this.#n) return undefined;
    this.#drawn++;
    const j = i + Math.min(
      this.#n - i - 1,
      Math.floor(this.#random() * (this.#n - i)),
    );
    if (j === i) return this.#moved?.get(i) ?? i;
    this.#moved ??= new Map();
    const picked = this.#moved.get(j) ?? j;
    this.#moved.set(j, this.#moved.get(i) ?? i);
    return picked;
  }
}

/**
 * Addresses grouped by network, with O(1) add and delete and a fair random
 * sample.
 *
 * @example Sampling fairly across networks
 * ```ts
 * import { HolderSet } from "./_holder_set.ts";
 * const set = new HolderSet();
 * for (let port = 1; port <= 100; port++) set.add(`10.0.0.9:${port}`, "10.0.0.9");
 * set.add("10.0.0.1:1", "10.0.0.1");
 * const two = set.sample(2, Math.random).map((h) => h.address);
 * if (!two.includes("10.0.0.1:1")) throw new Error("crowded out");
 * ```
 */
export class HolderSet {
  readonly #entries = new Map<string, Entry>();
  readonly #groups: Group[] = [];
  readonly #byKey = new Map<string, Group>();

  /** Number of distinct addresses. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The holder at `address`, if any.
   *
   * @param address The holder.
   * @returns It, or `undefined`.
   */
  get(address: string): Holder | undefined {
    return this.#entries.get(address);
  }

  /**
   * Adds a holder, or one more label for it.
   *
   * @param address The holder.
   * @param network Its network (see {@linkcode networkOf}).
   * @param label A name it holds the content under.
   */
  add(address: string, network: string, label?: string): void {
    const existing = this.#entries.get(address);
    if (existing) {
      if (label !== undefined && !existing.labels.includes(label)) {
        existing.labels.push(label);
      }
      return;
    }
    let group = this.#byKey.get(network);
    if (!group) {
      group = { members: [], slot: this.#groups.length, key: network };
      this.#groups.push(group);
      this.#byKey.set(network, group);
    }
    const entry: Entry = {
      address,
      labels: label === undefined ? [] : [label],
      group,
      slot: group.members.length,
    };
    group.members.push(entry);
    this.#entries.set(address, entry);
  }

  /**
   * Removes a label of a holder, and the holder once it has none left (at
   * once when no label is given).
   *
   * @param address The holder.
   * @param label The label to drop.
   */
  delete(address: string, label?: string): void {
    const entry = this.#entries.get(address);
    if (!entry) return;
    if (label !== undefined) {
      const i = entry.labels.indexOf(label);
      if (i >= 0) entry.labels.splice(i, 1);
      if (entry.labels.length > 0) return;
    }
    this.#entries.delete(address);
    const { group } = entry;
    swapRemove(group.members, entry.slot, (moved, slot) => moved.slot = slot);
    if (group.members.length === 0) {
      this.#byKey.delete(group.key);
      swapRemove(this.#groups, group.slot, (moved, slot) => moved.slot = slot);
    }
  }

  /**
   * Up to `limit` holders, round-robin across networks in random order and
   * at random inside each network. Costs O(limit + networks), never
   * O(holders).
   *
   * @param limit Most holders returned.
   * @param random Uniform random numbers in [0, 1).
   * @param accept Holders it refuses are skipped (e.g. expired ones).
   * @returns The sample, best spread first.
   */
  sample(
    limit: number,
    random: () => number,
    accept: (address: string) => boolean = () => true,
  ): Holder[] {
    const out: Holder[] = [];
    if (limit <= 0) return out;
    const draw = (cursor: { group: Group; order: LazyShuffle }) => {
      for (
        let i = cursor.order.next();
        i !== undefined;
        i = cursor.order.next()
      ) {
        const entry = cursor.group.members[i]!;
        if (accept(entry.address)) return entry;
      }
      return undefined;
    };
    // Round one: one holder from each network, networks in random order.
    let active: { group: Group; order: LazyShuffle }[] = [];
    const networks = new LazyShuffle(this.#groups.length, random);
    for (let g = networks.next(); g !== undefined; g = networks.next()) {
      if (out.length >= limit) return out;
      const group = this.#groups[g]!;
      const cursor = {
        group,
        order: new LazyShuffle(group.members.length, random),
      };
      const entry = draw(cursor);
      if (entry) {
        out.push(entry);
        active.push(cursor);
      }
    }
    // Later rounds: one more from each network that has one, same order.
    while (out.length < limit && active.length > 0) {
      const next: typeof active = [];
      for (const cursor of active) {
        if (out.length >= limit) break;
        const entry = draw(cursor);
        if (entry) {
          out.push(entry);
          next.push(cursor);
        }
      }
      active = next;
    }
    return out;
  }
}

/** Removes `array[i]` by moving the last element into its place. */
function swapRemove<T>(
  array: T[],
  i: number,
  onMove: (moved: T, slot: number) => void,
): void {
  const last = array.pop()!;
  if (i < array.length) {
    array[i] = last;
    onMove(last, i);
  }
}

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

/**
 * The host of `host:port` or `[v6]:port`.
 *
 * @param address The address.
 * @returns Its host, brackets removed.
 */
export function hostOf(address: string): string {
  const colon = address.lastIndexOf(":");
  const host = colon >= 0 ? address.slice(0, colon) : address;
  return host.startsWith("[") ? host.slice(1, -1) : host;
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
 * Addresses grouped by network, with a fair random sample. Compact for the
 * common case of holders from one network (no map until a second network
 * joins); finding an address scans its network's members, which the
 * per-network peer limit keeps short.
 *
 * @example Sampling fairly across networks
 * ```ts
 * import { HolderSet } from "./_holder_set.ts";
 * const set = new HolderSet();
 * for (let port = 1; port <= 100; port++) set.add(`10.0.0.9:${port}`, "10.0.0.9");
 * set.add("10.0.0.1:1", "10.0.0.1");
 * const two = set.sample(2, Math.random);
 * if (!two.includes("10.0.0.1:1")) throw new Error("crowded out");
 * ```
 */
export class HolderSet {
  /** The only network, while there is at most one. */
  #network: string | undefined;
  /** Its addresses. */
  #members: string[] = [];
  /** Every network's addresses, once there are two or more networks. */
  #byNetwork: Map<string, string[]> | undefined;
  #size = 0;

  /** Number of addresses. */
  get size(): number {
    return this.#size;
  }

  #membersOf(network: string): string[] | undefined {
    if (this.#byNetwork) return this.#byNetwork.get(network);
    return network === this.#network ? this.#members : undefined;
  }

  /**
   * Whether `address` (from `network`) is in the set.
   *
   * @param address The holder.
   * @param network Its network (see {@linkcode networkOf}).
   * @returns Whether it is held.
   */
  has(address: string, network: string): boolean {
    return this.#membersOf(network)?.includes(address) ?? false;
  }

  /**
   * Adds a holder that is not in the set yet.
   *
   * @param address The holder.
   * @param network Its network (see {@linkcode networkOf}).
   */
  add(address: string, network: string): void {
    this.#size++;
    const members = this.#membersOf(network);
    if (members) {
      members.push(address);
    } else if (this.#size === 1) {
      this.#byNetwork = undefined;
      this.#network = network;
      this.#members = [address];
    } else {
      if (!this.#byNetwork) {
        this.#byNetwork = new Map([[this.#network!, this.#members]]);
        this.#network = undefined;
        this.#members = [];
      }
      this.#byNetwork.set(network, [address]);
    }
  }

  /**
   * Removes a holder.
   *
   * @param address The holder.
   * @param network Its network.
   * @returns Whether it was there.
   */
  delete(address: string, network: string): boolean {
    const members = this.#membersOf(network);
    const i = members?.indexOf(address) ?? -1;
    if (i < 0) return false;
    // Order inside a network does not matter: move the last one here.
    const last = members!.pop()!;
    if (i < members!.length) members![i] = last;
    this.#size--;
    if (members!.length === 0) this.#byNetwork?.delete(network);
    return true;
  }

  /**
   * Up to `limit` holders, round-robin across networks in random order and
   * at random inside each network. Costs O(limit + networks), never
   * O(holders).
   *
   * @param limit Most holders returned.
   * @param random Uniform random numbers in [0, 1).
   * @param accept Holders it refuses are skipped (e.g. expired ones).
   * @returns The addresses, best spread first.
   */
  sample(
    limit: number,
    random: () => number,
    accept: (address: string) => boolean = () => true,
  ): string[] {
    const out: string[] = [];
    if (limit <= 0 || this.#size === 0) return out;
    const groups = this.#byNetwork
      ? [...this.#byNetwork.values()]
      : [this.#members];
    const draw = (cursor: { members: string[]; order: LazyShuffle }) => {
      for (
        let i = cursor.order.next();
        i !== undefined;
        i = cursor.order.next()
      ) {
        const address = cursor.members[i]!;
        if (accept(address)) return address;
      }
      return undefined;
    };
    // Round one: one holder from each network, networks in random order.
    let active: { members: string[]; order: LazyShuffle }[] = [];
    const networks = new LazyShuffle(groups.length, random);
    for (let g = networks.next(); g !== undefined; g = networks.next()) {
      if (out.length >= limit) return out;
      const members = groups[g]!;
      const cursor = {
        members,
        order: new LazyShuffle(members.length, random),
      };
      const address = draw(cursor);
      if (address !== undefined) {
        out.push(address);
        active.push(cursor);
      }
    }
    // Later rounds: one more from each network that has one, same order.
    while (out.length < limit && active.length > 0) {
      const next: typeof active = [];
      for (const cursor of active) {
        if (out.length >= limit) break;
        const address = draw(cursor);
        if (address !== undefined) {
          out.push(address);
          next.push(cursor);
        }
      }
      active = next;
    }
    return out;
  }
}

/**
 * A holder set as the registry stores it: one address as a bare string (most
 * files have one holder), a {@linkcode HolderSet} from the second on.
 */
export type Holders = string | HolderSet;

/**
 * Adds an address that is not held yet.
 *
 * @param holders The set, or `undefined` for an empty one.
 * @param address The holder.
 * @param network Its network.
 * @param networkOfHolder The network of an address already held.
 * @returns The set to keep.
 */
export function addHolder(
  holders: Holders | undefined,
  address: string,
  network: string,
  networkOfHolder: (address: string) => string,
): Holders {
  if (holders === undefined) return address;
  if (typeof holders === "string") {
    const set = new HolderSet();
    set.add(holders, networkOfHolder(holders));
    set.add(address, network);
    return set;
  }
  holders.add(address, network);
  return holders;
}

/**
 * Removes an address.
 *
 * @param holders The set.
 * @param address The holder.
 * @param network Its network.
 * @returns The set to keep, `undefined` once empty.
 */
export function deleteHolder(
  holders: Holders,
  address: string,
  network: string,
): Holders | undefined {
  if (typeof holders === "string") {
    return holders === address ? undefined : holders;
  }
  holders.delete(address, network);
  return holders.size === 0 ? undefined : holders;
}

/**
 * Number of addresses.
 *
 * @param holders The set.
 * @returns Its size.
 */
export function holderCount(holders: Holders | undefined): number {
  if (holders === undefined) return 0;
  return typeof holders === "string" ? 1 : holders.size;
}

/**
 * A fair sample, as {@linkcode HolderSet.sample}.
 *
 * @param holders The set.
 * @param limit Most holders returned.
 * @param random Uniform random numbers in [0, 1).
 * @param accept Holders it refuses are skipped.
 * @returns The addresses.
 */
export function sampleHolders(
  holders: Holders | undefined,
  limit: number,
  random: () => number,
  accept: (address: string) => boolean,
): string[] {
  if (holders === undefined || limit <= 0) return [];
  if (typeof holders === "string") return accept(holders) ? [holders] : [];
  return holders.sample(limit, random, accept);
}

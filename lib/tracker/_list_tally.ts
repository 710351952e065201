/**
 * Private helper of the stores' filtered `list`: the contents met under the
 * matching names, each shown under its most common matching name, and the
 * seed-protocol names, bounded by the reply's limit; and the byte estimate
 * both stores bound a `list` reply with.
 *
 * @module
 */
import type { ListedFile } from "../protocol/messages.ts";

/** Bytes of a `list` entry besides its name: id, size, holders, keys. */
export const ENTRY_BYTES = 128;

/** Upper bound of the UTF-8 bytes of a string as a JSON string. */
export function jsonBytes(text: string): number {
  let bytes = 2;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    bytes += c < 0x80 ? (c === 0x22 || c === 0x5c ? 2 : 1) : c < 0x800 ? 2 : 3;
  }
  return bytes;
}

/**
 * Collects a filtered `list`: `K` names one (content id, size) in the store
 * that uses it.
 */
export class ListTally<K> {
  /** Each content met, with its best matching name and holders under it. */
  readonly found: Map<K, { name: string; count: number }> = new Map();
  /** Seed-protocol names met (no id, no size). */
  readonly legacy: ListedFile[] = [];
  /** Whether something was left out for the limit. */
  full = false;

  /** @param limit Most entries in the reply. */
  constructor(readonly limit: number) {}

  /** Whether one more entry fits; marks the tally full when not. */
  #room(): boolean {
    if (this.found.size + this.legacy.length < this.limit) return true;
    this.full = true;
    return false;
  }

  /**
   * `count` peers hold content `key` under `name`: the content is shown
   * under its most common matching name, ties to the smaller name.
   *
   * @returns `false` once the reply is full.
   */
  content(key: K, name: string, count: number): boolean {
    const seen = this.found.get(key);
    if (!seen) {
      if (!this.#room()) return false;
      this.found.set(key, { name, count });
    } else if (
      count > seen.count || (count === seen.count && name < seen.name)
    ) {
      seen.name = name;
      seen.count = count;
    }
    return true;
  }

  /**
   * Content `key` matched by an id prefix, under `name()`, unless already
   * met.
   *
   * @returns `false` once the reply is full.
   */
  byId(key: K, name: () => string): boolean {
    if (this.found.has(key)) return true;
    if (!this.#room()) return false;
    this.found.set(key, { name: name(), count: 0 });
    return true;
  }

  /**
   * A name `holders` seed-protocol peers hold.
   *
   * @returns `false` once the reply is full.
   */
  seed(name: string, holders: number): boolean {
    if (!this.#room()) return false;
    this.legacy.push({ name, id: null, size: null, holders });
    return true;
  }
}

/**
 * Private: what a typed target means. A whole content id, a unique id prefix
 * (8+ hex digits, resolved with the tracker's `list`), or else a file name.
 *
 * @module
 */
import { isContentId } from "../content/manifest.ts";
import type { ListedFile } from "../protocol/messages.ts";

/** Shortest id prefix accepted as a target. */
export const MIN_ID_PREFIX = 8;
/** How many hex digits of an id tables and messages show. */
export const SHOWN_ID_LENGTH = 16;

const ID_PREFIX = /^[0-9a-fA-F]{8,63}$/;

/** The ids as tables show them, for an error message. */
export function shownIds(ids: Iterable<string>): string {
  return [...ids].map((id) => id.slice(0, SHOWN_ID_LENGTH)).join(", ");
}

/**
 * Resolves a target: 64 hex digits are an id; 8 to 63 hex digits are the
 * start of an id when exactly one listed content id (or a file of exactly
 * that name) matches; anything else, or a prefix no id starts with, is a
 * name.
 *
 * @param target What the user typed.
 * @param list The tracker's `list` (a hex query also matches ids).
 * @returns `{ id }` or `{ name }`.
 * @throws {RangeError} When several content ids match, naming them.
 */
export async function resolveTarget(
  target: string,
  list: (query: string) => Promise<ListedFile[]>,
): Promise<{ id: string } | { name: string }> {
  const whole: boolean = isContentId(target); // (no narrowing of target)
  if (whole) return { id: target };
  if (!ID_PREFIX.test(target)) return { name: target };
  const prefix = target.toLowerCase();
  const ids = new Set<string>();
  for (const file of await list(prefix)) {
    if (
      file.id !== null && (file.id.startsWith(prefix) || file.name === target)
    ) {
      ids.add(file.id);
    }
  }
  if (ids.size === 0) return { name: target };
  if (ids.size > 1) {
    throw new RangeError(
      `Cannot pick a file for ${target}: ${ids.size} content ids match (${
        shownIds([...ids].sort())
      }); give more of the id`,
    );
  }
  return { id: [...ids][0]! };
}

/**
 * Private: the one duration parser of the command line and the dashboard.
 * A duration is a number with a unit (`500ms`, `90s`, `2m`, `1h`), never bare.
 *
 * @module
 */

/** Shortest duration accepted, ms. */
export const MIN_DURATION_MS = 10;
/** Longest duration accepted, ms (24 hours). */
export const MAX_DURATION_MS = 24 * 3600_000;

const SCALES: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3600_000,
};

/**
 * Parses a duration with its unit: `ms`, `s`, `m` or `h`, decimals allowed
 * (`1.5s`), from 10ms to 24h. A bare number is refused: its unit would be a
 * guess.
 *
 * @param text The duration, e.g. `30s`.
 * @param what What it is for, named in the error (e.g. `--interval`).
 * @returns Whole milliseconds.
 * @throws {RangeError} Naming the value and what to write instead.
 *
 * @example Parsing durations
 * ```ts
 * import { parseDuration } from "./_duration.ts";
 * console.assert(parseDuration("1h") === 3_600_000);
 * console.assert(parseDuration("500ms") === 500);
 * ```
 */
export function parseDuration(text: string, what = "duration"): number {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) {
    throw new RangeError(
      `Invalid ${what} "${text}": give a unit, e.g. ${trimmed}s or ${trimmed}ms (ms, s, m or h)`,
    );
  }
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(trimmed);
  if (!match) {
    throw new RangeError(
      `Invalid ${what} "${text}": use a number and a unit, e.g. 500ms, 90s, 2m or 1h`,
    );
  }
  const ms = Math.round(Number(match[1]) * SCALES[match[2]!]!);
  if (!(ms >= MIN_DURATION_MS && ms <= MAX_DURATION_MS)) {
    throw new RangeError(
      `Invalid ${what} "${text}": use 10ms to 24h`,
    );
  }
  return ms;
}

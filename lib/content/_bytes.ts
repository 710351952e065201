/**
 * Private byte helpers: hex encoding and human-readable sizes and rates.
 *
 * @module
 */

/** Decodes 2n hex digits to n bytes (input already validated). */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >>> 1);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** Formats a byte count: `1.5 MiB`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0
    ? `${Math.round(value)} B`
    : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Formats seconds as `1m05s` / `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.max(0, Math.round(seconds));
  return s >= 60
    ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
    : `${s}s`;
}

/**
 * Parses a size with an optional K/M/G suffix (powers of 1024):
 * `4096`, `512K`, `50M`, `1G`. Returns `NaN` when it is not one.
 */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?B)?$/.exec(text.trim());
  if (!match) return NaN;
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
    match[2]!.toLowerCase() as "" | "k" | "m" | "g"
  ];
  return Math.round(Number(match[1]) * scale);
}

/**
 * Private helpers for the command-line entrypoints: flag parsing, error lines
 * and progress rendering. They return strings; only the entrypoints print.
 *
 * @module
 */
import { formatBytes, formatDuration, parseSize } from "../content/_bytes.ts";
import { parseDuration as parseDurationText } from "../content/_duration.ts";
import type { DownloadProgress } from "../download/transfer.ts";

/** A flag value that cannot be used; the message says which and why. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parses a port flag: an integer from `min` to 65535. */
export function parsePort(text: string, min = 0): number {
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(port >= min && port <= 65535)) {
    throw new UsageError(
      `Invalid port "${text}": use a number from ${min} to 65535`,
    );
  }
  return port;
}

/**
 * Parses a duration flag (`500ms`, `90s`, `2m`, `1h`; 10ms to 24h) with the
 * parser the dashboard uses too; a bare number is refused.
 */
export function parseDuration(text: string, flag = "duration"): number {
  try {
    return parseDurationText(text, flag);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Parses a size in bytes within bounds: `4096`, `512K`, `1M`. */
export function parseBoundedSize(
  text: string,
  min: number,
  max: number,
  what: string,
): number {
  const size = parseSize(text);
  if (!(size >= min && size <= max)) {
    throw new UsageError(
      `Invalid ${what} "${text}": use ${formatBytes(min)} to ${
        formatBytes(max)
      } (e.g. 1M)`,
    );
  }
  return size;
}

/** `1 file`, `2 files`: a count with its noun, plural when it is not one. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** Turns any error into one line for stderr. */
export function errorLine(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) {
    return `${error.message.split("\n")[0]} (is it running? check --tracker)`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0]!;
}

/** Renders a one-line progress bar. */
export function renderProgress(p: DownloadProgress, width = 24): string {
  const fraction = p.size === 0 ? 1 : p.bytes / p.size;
  const filled = Math.round(fraction * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  return `[${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${
    formatBytes(p.bytes)
  }/${formatBytes(p.size)} ${formatBytes(p.rate)}/s ETA ${
    formatDuration(p.eta)
  } ${p.sources} source${p.sources === 1 ? "" : "s"}`;
}

/** Formats rows as aligned columns. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]!))
      .join("  ")
  ).join("\n");
}

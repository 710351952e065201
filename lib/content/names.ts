/**
 * The one validator for file names that cross the wire, and safe resolution of
 * a validated name inside a root directory (symlinks included).
 *
 * @module
 */
import { join, resolve, sep } from "node:path";
import { ProtocolError } from "../errors.ts";

/** Suffix of an incomplete download; such files are never listed or shared. */
export const PART_SUFFIX = ".part";

/** Longest accepted name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024;
/** Longest accepted single path segment, in UTF-8 bytes. */
export const MAX_SEGMENT_BYTES = 255;
/** Deepest accepted path, in segments. */
export const MAX_NAME_DEPTH = 32;

const encoder = new TextEncoder();

/** Characters Windows refuses in a name (`:` also opens a stream). */
const WINDOWS_FORBIDDEN = /[<>:"|?*]/;

/**
 * Device names Windows resolves in any directory, whatever the case and
 * extension (`nul.txt`, `Con .tar.gz`); `¹²³` count as digits there.
 */
const WINDOWS_DEVICE =
  /^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(?:COM|LPT)[1-9¹²³]) *$/i;

/**
 * Checks a file name from the network: a relative POSIX path such as
 * `docs/a.txt`. Refuses empty names, `.` and `..` segments, absolute paths,
 * drive letters, backslashes, NUL and control characters, empty segments and
 * over-long names; and, so that a name means one plain file on every system,
 * what Windows reads as something else: the characters `<>:"|?*` (a colon
 * names a stream), a segment ending in a dot or a space, and device names
 * (`CON`, `PRN`, `AUX`, `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9`, `CONIN$`,
 * `CONOUT$`) in any case and with any extension, such as `nul.txt`.
 *
 * @param name The untrusted value.
 * @returns The same name, now known to be safe to join under a root.
 * @throws {ProtocolError} Saying what is wrong with it.
 *
 * @example Accepting and refusing names
 * ```ts
 * import { validateName } from "@shoal/shoal/content";
 * validateName("docs/a.txt");
 * for (const name of ["../etc/passwd", "nul.txt", "a.txt:stream", "x."]) {
 *   let refused = false;
 *   try {
 *     validateName(name);
 *   } catch {
 *     refused = true;
 *   }
 *   if (!refused) throw new Error(`${name} accepted`);
 * }
 * ```
 */
export function validateName(name: unknown): string {
  if (typeof name !== "string") {
    throw new ProtocolError(
      `Cannot accept name: expected a string, got ${typeof name}`,
    );
  }
  // Trackers check every name of every registration, and clients every
  // holder of a reply: the common, valid case allocates nothing it need not.
  if (name.length === 0) refuse(name, "it is empty");
  if (utf8Exceeds(name, MAX_NAME_BYTES)) {
    refuse(name, `it is longer than ${MAX_NAME_BYTES} bytes`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    refuse(name, "it contains a NUL or control character");
  }
  if (name.includes("\\")) refuse(name, "it contains a backslash");
  if (name.startsWith("/")) refuse(name, "it is an absolute path");
  if (/^[A-Za-z]:/.test(name)) refuse(name, "it starts with a drive letter");
  const forbidden = WINDOWS_FORBIDDEN.exec(name);
  if (forbidden) {
    refuse(
      name,
      `it contains ${JSON.stringify(forbidden[0])}, which Windows forbids`,
    );
  }
  const segments = name.split("/");
  if (segments.length > MAX_NAME_DEPTH) {
    refuse(name, `it is deeper than ${MAX_NAME_DEPTH} directories`);
  }
  for (const segment of segments) {
    if (segment === "") refuse(name, "it has an empty path segment");
    if (segment === "." || segment === "..") {
      refuse(name, `it contains a "${segment}" segment`);
    }
    if (utf8Exceeds(segment, MAX_SEGMENT_BYTES)) {
      refuse(name, `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    }
    if (segment.endsWith(".") || segment.endsWith(" ")) {
      refuse(
        name,
        `segment ${JSON.stringify(segment)} ends with a ${
          segment.endsWith(".") ? "dot" : "space"
        }, which Windows drops`,
      );
    }
    const device = windowsDevice(segment);
    if (device) {
      refuse(
        name,
        `segment ${JSON.stringify(segment)} is the Windows device ${device}`,
      );
    }
  }
  return name;
}

function refuse(name: string, why: string): never {
  const shown = JSON.stringify(
    name.length > 80 ? name.slice(0, 80) + "…" : name,
  );
  throw new ProtocolError(`Cannot accept name ${shown}: ${why}`);
}

/**
 * Whether `text` takes more than `max` bytes in UTF-8. A UTF-16 code unit
 * takes at most 3 bytes (a surrogate pair 4 for its 2 units), so short text
 * is never encoded.
 */
function utf8Exceeds(text: string, max: number): boolean {
  return text.length * 3 > max && encoder.encode(text).length > max;
}

/** The device a path segment names on Windows, upper-cased, if any. */
function windowsDevice(segment: string): string | undefined {
  // Every device name starts with one of these letters: skip the rest.
  if (!/^[acnlp]/i.test(segment)) return undefined;
  const dot = segment.indexOf(".");
  const stem = dot < 0 ? segment : segment.slice(0, dot);
  return WINDOWS_DEVICE.exec(stem)?.[1]?.toUpperCase();
}

/**
 * Whether `path` is `root` or inside it (both absolute, already resolved).
 *
 * @param root The directory.
 * @param path The candidate.
 * @returns `true` when `path` does not escape `root`.
 *
 * @example
 * ```ts
 * import { isInside } from "@shoal/shoal/content";
 * if (!isInside("/srv/share", "/srv/share/a.txt")) throw new Error("inside");
 * if (isInside("/srv/share", "/srv/shared/a.txt")) throw new Error("outside");
 * ```
 */
export function isInside(root: string, path: string): boolean {
  const r = resolve(root);
  const p = resolve(path);
  return p === r || p.startsWith(r.endsWith(sep) ? r : r + sep);
}

/**
 * Resolves a network name to a path under `root` for reading: validates the
 * name, then follows symlinks and refuses a target outside the real `root`.
 *
 * @param root The shared directory.
 * @param name The untrusted name.
 * @returns The real path of the file.
 * @throws {ProtocolError} If the name is invalid or escapes the root.
 * @throws {Deno.errors.NotFound} If there is no such file.
 *
 * @example Resolving a shared file
 * ```ts
 * import { resolveForRead } from "@shoal/shoal/content";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "hi");
 * const path = await resolveForRead(root, "a.txt");
 * if (!path.endsWith("a.txt")) throw new Error("wrong path");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function resolveForRead(
  root: string,
  name: string,
): Promise<string> {
  validateName(name);
  const realRoot = await Deno.realPath(root);
  const real = await Deno.realPath(join(realRoot, name));
  if (!isInside(realRoot, real)) {
    throw new ProtocolError(
      `Cannot serve ${
        JSON.stringify(name)
      }: it resolves outside the shared directory`,
    );
  }
  return real;
}

/**
 * Resolves a network name to a path under `root` for writing: validates the
 * name and refuses it if any existing parent directory is a symlink leading
 * outside the real `root`, or if the target itself is a symlink.
 *
 * @param root The download directory.
 * @param name The untrusted name.
 * @returns The path to write (inside the real root).
 * @throws {ProtocolError} If the name is invalid or would escape the root.
 *
 * @example Resolving a download target
 * ```ts
 * import { resolveForWrite } from "@shoal/shoal/content";
 * const root = await Deno.makeTempDir();
 * const path = await resolveForWrite(root, "docs/new.txt");
 * if (!path.endsWith("new.txt")) throw new Error("wrong path");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function resolveForWrite(
  root: string,
  name: string,
): Promise<string> {
  validateName(name);
  const realRoot = await Deno.realPath(root);
  const segments = name.split("/");
  let current = realRoot;
  for (let i = 0; i < segments.length; i++) {
    current = join(current, segments[i]!);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(current);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) break;
      throw error;
    }
    if (info.isSymlink) {
      const real = await Deno.realPath(current).catch(() => "");
      if (i === segments.length - 1 || !isInside(realRoot, real)) {
        throw new ProtocolError(
          `Cannot write ${
            JSON.stringify(name)
          }: a symlink on its path leads outside the download directory`,
        );
      }
      current = real;
    }
  }
  const target = join(realRoot, name);
  if (!isInside(realRoot, target)) {
    throw new ProtocolError(
      `Cannot write ${
        JSON.stringify(name)
      }: it resolves outside the download directory`,
    );
  }
  return target;
}

/**
 * Network addresses as text: parsing `host:port` (and `[v6]:port`) and
 * formatting a host and port back, shared by transports and servers.
 *
 * @module
 */

/** A parsed `host:port` pair. */
export interface HostPort {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** TCP port, 1–65535. */
  port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (host defaults to `defaultHost`).
 *
 * @param text The address.
 * @param defaultHost Host used when `text` starts with `:`.
 * @returns The host and port.
 * @throws {TypeError} If the text is not an address with a valid port.
 *
 * @example Parsing addresses
 * ```ts
 * import { parseHostPort } from "@shoal/shoal/net";
 * const { hostname, port } = parseHostPort("localhost:9000");
 * if (hostname !== "localhost" || port !== 9000) throw new Error("bad parse");
 * ```
 */
export function parseHostPort(
  text: string,
  defaultHost = "127.0.0.1",
): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new TypeError(
      `Cannot parse address "${text}": expected host:port with a port from 1 to 65535`,
    );
  }
  const hostname = match[1] ?? match[2] ?? "";
  return { hostname: hostname === "" ? defaultHost : hostname, port };
}

/**
 * Formats a host and port as `host:port` (`[v6]:port` for IPv6).
 *
 * @param hostname Host or IP.
 * @param port Port.
 * @returns The address text.
 *
 * @example Formatting an IPv6 address
 * ```ts
 * import { formatHostPort } from "@shoal/shoal/net";
 * if (formatHostPort("::1", 80) !== "[::1]:80") throw new Error("bad format");
 * ```
 */
export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}

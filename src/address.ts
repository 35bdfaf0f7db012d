// address.ts — parsing the ADDR:PORT forms of --to and --listen. Only numeric addresses and
// localhost (127.0.0.1 in any namespace): another name would be resolved in the host's
// namespace, not the target's, which is rarely what a user means.
import { NsproxyError } from './errors';

export interface Endpoint {
  /** numeric address without brackets: "127.0.0.1", "::1" */
  address: string;
  port: number;
  family: 4 | 6;
}

export interface ParseOptions {
  /** the option being parsed, for messages: "--to" */
  option: string;
  /** accept a bare "PORT", meaning 127.0.0.1:PORT */
  portOnly?: boolean;
  /** accept port 0 (let the kernel choose) */
  portZero?: boolean;
}

/** node:net's isIPv4 regular expression: loading node:net itself would cost a daemon's start-up
 * some milliseconds (streams, TCP and pipe wrappers) that nsproxy never uses. */
const V4_SEGMENT = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const IPV4 = new RegExp(`^(?:${V4_SEGMENT}\\.){3}${V4_SEGMENT}$`);

export function isIPv4(text: string): boolean {
  return IPV4.test(text);
}

/** node:net's isIPv6, loaded when first needed: only for an address with two colons or more, as
 * every IPv6 address has. */
export function isIPv6(text: string): boolean {
  return text.indexOf(':') !== text.lastIndexOf(':') && (require('node:net') as typeof import('node:net')).isIPv6(text);
}

const EXAMPLE = 'write ADDR:PORT with a numeric address, e.g. 127.0.0.1:5432 or [::1]:5432';

function invalid(options: ParseOptions, text: string, why: string): NsproxyError {
  return new NsproxyError('NSPROXY_ERR_INVALID_ADDRESS', `${options.option} '${text}': ${why}`);
}

/** The port of `text` (for messages), from its `portText` part. */
export function parsePort(text: string, portText: string, options: ParseOptions): number {
  if (!/^\d+$/.test(portText)) throw invalid(options, text, `'${portText}' is not a port number; ${EXAMPLE}`);
  const port = Number(portText);
  const min = options.portZero ? 0 : 1;
  if (port < min || port > 65535) throw invalid(options, text, `port ${port} is out of range; use a port from ${min} to 65535`);
  return port;
}

export function parseEndpoint(text: string, options: ParseOptions): Endpoint {
  if (options.portOnly && /^\d+$/.test(text)) {
    return { address: '127.0.0.1', port: parsePort(text, text, options), family: 4 };
  }
  if (text.startsWith('/') || text.startsWith('@')) {
    throw invalid(options, text, 'a Unix socket path; nsproxy forwards to TCP addresses only, write ADDR:PORT');
  }
  // localhost is loopback in any namespace (socket-proxyd's users write localhost:5432)
  const local = /^localhost:(.*)$/i.exec(text);
  if (local) return { address: '127.0.0.1', port: parsePort(text, local[1] as string, options), family: 4 };
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  let host: string;
  let portText: string | undefined;
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
  } else {
    const colon = text.lastIndexOf(':');
    if (colon >= 0 && isIPv6(text)) {
      throw invalid(options, text, 'an IPv6 address needs brackets; write [ADDRESS]:PORT, e.g. [::1]:5432');
    }
    host = colon >= 0 ? text.slice(0, colon) : text;
    portText = colon >= 0 ? text.slice(colon + 1) : undefined;
  }
  if (portText === undefined || portText === '') throw invalid(options, text, `missing port; ${EXAMPLE}`);
  const port = parsePort(text, portText, options);
  if (bracketed ? isIPv6(host) : isIPv4(host)) {
    return { address: host, port, family: bracketed ? 6 : 4 };
  }
  throw invalid(options, text, `'${host}' is not a numeric IP address; ${EXAMPLE}`);
}

export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.family === 6 ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

// procfs.ts — what /proc says about a process and its network namespace: credentials and
// capabilities (status), uid/gid maps, environment, TCP sockets (net/tcp, net/tcp6) and which
// process holds a socket. Reading, parsing; nothing here enters a namespace.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const CAP_SYS_ADMIN = 21;

/** The fields of /proc/PID/status ("Uid" -> "1000\t1000\t1000\t1000"). */
export function readStatus(pid: number | 'self'): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** Whether a capability bit is set in a /proc status mask ("000001ffffffffff"). */
export function hasCapability(mask: string, capability: number): boolean {
  return ((BigInt(`0x${mask || '0'}`) >> BigInt(capability)) & 1n) === 1n;
}

/**
 * Whether this process may setns() into namespaces itself: CAP_SYS_ADMIN in its effective set
 * (root, or a service user given it with AmbientCapabilities=), not uid 0 as such.
 */
export function hasCapSysAdmin(status: Map<string, string> = readStatus('self')): boolean {
  return hasCapability(status.get('CapEff') ?? '0', CAP_SYS_ADMIN);
}

export interface Credentials {
  uid: number;
  gid: number;
  groups: number[];
  capabilities: { bounding: string; effective: string; permitted: string; inheritable: string };
  noNewPrivs: boolean;
}

/** A process's effective uid/gid, groups and capabilities, as seen from our user namespace. */
export function credentialsOf(pid: number): Credentials {
  const status = readStatus(pid);
  const second = (key: string) => Number((status.get(key) ?? '').split(/\s+/)[1]);
  return {
    uid: second('Uid'),
    gid: second('Gid'),
    groups: (status.get('Groups') ?? '').split(/\s+/).filter(Boolean).map(Number),
    capabilities: {
      bounding: status.get('CapBnd') ?? '0',
      effective: status.get('CapEff') ?? '0',
      permitted: status.get('CapPrm') ?? '0',
      inheritable: status.get('CapInh') ?? '0',
    },
    noNewPrivs: status.get('NoNewPrivs') === '1',
  };
}

export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

/** /proc/PID/uid_map or gid_map: "inside outside count" per line. */
export function parseIdMap(text: string): IdRange[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number))
    .filter((cols) => cols.length === 3 && cols.every(Number.isFinite))
    .map(([inside, outside, count]) => ({ inside: inside as number, outside: outside as number, count: count as number }));
}

/** An id as seen from outside, as seen inside the user namespace of the map; undefined if unmapped. */
export function mapInside(id: number, ranges: IdRange[]): number | undefined {
  const range = ranges.find((r) => id >= r.outside && id < r.outside + r.count);
  return range && range.inside + (id - range.outside);
}

/** A process's environment ("NAME=value" entries); undefined when it may not be read. */
export function environmentOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

export interface TcpSocket {
  /** "127.0.0.1:5432", "[::]:5432" */
  local: string;
  address: string;
  port: number;
  family: 4 | 6;
  /** "LISTEN", "ESTABLISHED", ... */
  state: string;
  uid: number;
  inode: number;
}

const STATES: Record<string, string> = {
  '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT',
  '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING', '0C': 'NEW_SYN_RECV',
};

/** A /proc/net/tcp address, "0100007F" or 32 hex digits (four host-order 32-bit words) for tcp6. */
function hexAddress(hex: string): { address: string; family: 4 | 6 } {
  const words = (hex.match(/.{8}/g) ?? []).map((w) => (w.match(/../g) ?? []).reverse().join(''));
  if (hex.length === 8) {
    return { address: (words[0]?.match(/../g) ?? []).map((b) => parseInt(b, 16)).join('.'), family: 4 };
  }
  const bytes = words.join('');
  const groups = (bytes.match(/.{4}/g) ?? []).map((g) => parseInt(g, 16).toString(16));
  // an IPv4-mapped address reads better as such
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const v4 = (bytes.slice(24).match(/../g) ?? []).map((b) => parseInt(b, 16)).join('.');
    return { address: `::ffff:${v4}`, family: 6 };
  }
  return { address: compressIPv6(groups), family: 6 };
}

function compressIPv6(groups: string[]): string {
  let best = { start: -1, length: 0 };
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(':');
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.length).join(':')}`;
}

/** The rows of /proc/net/tcp or tcp6. */
export function parseTcpTable(text: string): TcpSocket[] {
  const sockets: TcpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const [addressHex = '', portHex = ''] = (cols[1] as string).split(':');
    const { address, family } = hexAddress(addressHex);
    const port = parseInt(portHex, 16);
    sockets.push({
      local: family === 6 ? `[${address}]:${port}` : `${address}:${port}`,
      address,
      port,
      family,
      state: STATES[cols[3] as string] ?? (cols[3] as string),
      uid: Number(cols[7]),
      inode: Number(cols[9]),
    });
  }
  return sockets;
}

/** /proc/PID/net/tcp and tcp6: the TCP sockets of PID's network namespace, without entering it. */
export function tcpSocketsOf(pid: number): TcpSocket[] {
  const read = (file: string) => {
    try {
      return readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      return '';
    }
  };
  return [...parseTcpTable(read('tcp')), ...parseTcpTable(read('tcp6'))];
}

/**
 * Which processes hold the sockets with these inodes (as netstat -p does), among the processes
 * in the network namespace `netnsInode` that we may look into. inode -> "postgres (pid 42)".
 */
export function socketHolders(inodes: number[], netnsInode: string): Map<number, { pid: number; command: string }> {
  const wanted = new Set(inodes.map((inode) => `socket:[${inode}]`));
  const holders = new Map<number, { pid: number; command: string }>();
  if (wanted.size === 0) return holders;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/net`) !== `net:[${netnsInode}]`) continue;
      for (const fd of readdirSync(`/proc/${entry}/fd`)) {
        const link = readlinkSync(`/proc/${entry}/fd/${fd}`);
        if (!wanted.has(link)) continue;
        const inode = Number(link.slice(8, -1));
        if (!holders.has(inode)) holders.set(inode, { pid: Number(entry), command: readFileSync(`/proc/${entry}/comm`, 'utf8').trim() });
      }
    } catch {
      // gone meanwhile, or not ours to look into
    }
  }
  return holders;
}

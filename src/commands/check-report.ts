// commands/check-report.ts — what `nsproxy check` found, and its text form: one labelled line
// (or a few) per finding, then the verdict. The JSON form is the object itself.

export interface CheckReport {
  ok: boolean;
  /** what is wrong, one sentence each; empty when ok */
  problems: string[];
  target: {
    kind: string;
    description: string;
    runtime?: string;
    containerId?: string;
    status?: string;
    networks?: Record<string, { ipv4?: string; ipv6?: string }>;
    pid?: number;
    /** inode of the network namespace: what `readlink /proc/PID/ns/net` shows as net:[INODE] */
    netnsInode?: string;
    /** uid that owns the user namespace owning the netns */
    ownerUid?: number;
    usernsInode?: string;
    /** how nsproxy would make sockets in there */
    access?: 'in-thread' | 'helper' | 'refused';
    accessDetail?: string;
  };
  interfaces?: Array<{ name: string; up: boolean }>;
  addresses: Array<{ interface: string; family: 4 | 6; address: string; prefixLength: number }>;
  listening: Array<{ address: string; uid: number; process?: string; pid?: number }>;
  listeningSource?: string;
  probes: Array<{ to: string; name?: string; listening?: string; accepted?: boolean; error?: string; elapsedMs?: number }>;
  readyExec?: { command: string; ok: boolean; result: string; output: string; elapsedMs: number };
  health?: { status: string; detail: string; ok: boolean };
}

const WIDTH = 11;

function line(label: string, text: string): string {
  return `${label.padEnd(WIDTH)}${text}\n`;
}

function continued(texts: string[], label: string): string {
  return texts.map((text, i) => line(i === 0 ? label : '', text)).join('');
}

export function renderCheck(r: CheckReport): string {
  let out = '';
  const t = r.target;
  if (t.netnsInode === undefined) {
    out += line('target', t.description);
  } else {
    const parts = [t.description];
    if (t.runtime) parts.push(`${t.runtime}${t.containerId ? ` id ${t.containerId.slice(0, 12)}` : ''}${t.status ? `, ${t.status}` : ''}`);
    if (t.pid !== undefined) parts.push(`PID ${t.pid}`);
    out += line('target', parts.join(', '));
    const owner = t.ownerUid === undefined ? 'owner unknown' : `owned by uid ${t.ownerUid}${t.usernsInode ? ` (user namespace user:[${t.usernsInode}])` : ''}`;
    out += line('netns', `net:[${t.netnsInode}], ${owner}`);
    out += line('access', t.accessDetail ?? '');
    const networks = Object.entries(t.networks ?? {}).map(([name, a]) => `${name} ${[a.ipv4, a.ipv6].filter(Boolean).join(' ')}`);
    if (networks.length > 0) out += continued(networks, 'networks');
    if (r.interfaces) {
      const byInterface = r.interfaces.map((i) => {
        const addresses = r.addresses.filter((a) => a.interface === i.name).map((a) => `${a.address}/${a.prefixLength}`);
        return `${i.name}${i.up ? '' : ' (down)'} ${addresses.join(' ') || '(no address)'}`;
      });
      out += continued(byInterface, 'addresses');
    }
    const listening = r.listening.map((l) => `${l.address}${l.process ? ` (${l.process}, PID ${l.pid})` : ` (uid ${l.uid})`}`);
    out += continued(listening.length > 0 ? listening : [`nothing (${r.listeningSource ?? '?'})`], 'listening');
  }
  for (const p of r.probes) {
    const name = p.name ? `${p.name}=` : '';
    const result = p.accepted === undefined ? 'not probed' : p.accepted ? `accepted a connection (${p.elapsedMs} ms)` : `failed: ${p.error}`;
    out += line('probe', `${name}${p.to}: ${result}${p.listening ? `; listener ${p.listening}` : '; no listener on that address'}`);
  }
  if (r.readyExec) {
    const e = r.readyExec;
    out += line('ready-exec', `'${e.command}': ${e.result} (${e.elapsedMs} ms)`);
    const output = e.output.trim().split('\n').filter(Boolean);
    if (output.length > 1) out += continued(output.slice(0, 10).map((l) => `| ${l}`), '');
  }
  if (r.health) out += line('health', r.health.detail);
  if (r.ok) {
    out += line('result', 'ok');
  } else {
    out += continued(r.problems, r.problems.length === 1 ? 'problem' : 'problems');
  }
  return out;
}

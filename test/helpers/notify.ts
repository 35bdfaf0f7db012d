// A real sd_notify receiver: an AF_UNIX datagram socket (path or "@abstract") that prints
// each datagram as one JSON line. Node cannot receive on such a socket, so python3 does.
import type { TestLike } from './env';
import { Proc, waitForStdoutLine } from './procs';

// Prints every datagram it receives as one JSON line; binds first, then says "bound".
const RECEIVER = `
import json, socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + addr[1:] if addr.startswith("@") else addr)
print("bound", flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;

export async function notifyReceiver(t: TestLike, address: string): Promise<Proc> {
  const receiver = new Proc('notify receiver', 'python3', ['-c', RECEIVER, address]);
  t.teardown(() => receiver.stop('SIGKILL', 5000));
  await waitForStdoutLine(receiver, (l) => l === 'bound', 10000, 'the receiver to bind');
  return receiver;
}

export function datagrams(receiver: Proc): string[] {
  return receiver.stdout.lines.filter((l) => l.startsWith('"')).map((l) => JSON.parse(l) as string);
}


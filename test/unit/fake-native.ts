// A fake addon for unit tests of TypeScript logic only: it never proves that forwarding works.
import type { Native, SocketDescription } from '../../src/native';

export function fakeNative(sockets: Record<number, Partial<SocketDescription> | 'closed'> = {}, inode = '777'): Native {
  return {
    openNamespace: () => 100,
    namespaceType: () => 0x40000000,
    pidfdOpen: () => 101,
    fdInode: () => inode,
    listenTcp: () => 102,
    describeSocket: (fd: number) => {
      const socket = sockets[fd];
      if (socket === undefined || socket === 'closed') throw Object.assign(new Error('fcntl EBADF (Bad file descriptor)'), { code: 'EBADF' });
      return { isSocket: true, type: 1, family: 2, listening: true, local: `127.0.0.1:${fd}`, ...socket };
    },
    raiseNofileLimit: () => ({ soft: 1024, hard: 1024 }),
    sdNotify: () => undefined,
    probeTcp: async () => null,
    execInTarget: async () => ({ outcome: 'exited', exitCode: 0, output: '', truncated: false }),
    inspectNetns: async () => ({ links: [], addresses: [], tcp: '', tcp6: '' }),
    owningUserns: () => 103,
    usernsOwnerUid: () => 0,
    FdWatch: class {
      close() {}
    },
    Engine: class {} as unknown as Native['Engine'],
    constants: { CLONE_NEWNET: 0x40000000, SOCK_STREAM: 1, AF_INET: 2, AF_INET6: 10, AF_UNIX: 1 },
  };
}

// host.ts — what nsproxy learns about its own process once, for the target code: the addon,
// who we are (euid, CAP_SYS_ADMIN) and our own user namespace.
import { closeSync, statSync } from 'node:fs';

import { loadNative } from './native';
import { hasCapSysAdmin } from './procfs';
import type { TargetDeps } from './target';

export function hostDeps(env: NodeJS.ProcessEnv = process.env): TargetDeps {
  return {
    native: loadNative(),
    env,
    closeFd: closeSync,
    euid: process.geteuid?.() ?? 0,
    privileged: hasCapSysAdmin(),
    ownUsernsInode: String(statSync('/proc/self/ns/user').ino),
  };
}

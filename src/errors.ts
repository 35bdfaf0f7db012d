// errors.ts — every error nsproxy reports to a user, with a stable code and an exit status.
// Messages are one line: what is wrong, then what to do about it.

/** Exit statuses (also documented in --help and the README). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1; // runtime failure: the world is not as needed (port in use, setns refused)
export const EXIT_USAGE = 2; // bad usage or configuration: fix the command line or the unit

const codes = {
  NSPROXY_ERR_USAGE: EXIT_USAGE,
  NSPROXY_ERR_INVALID_ADDRESS: EXIT_USAGE,
  NSPROXY_ERR_TARGET_NOT_FOUND: EXIT_USAGE,
  NSPROXY_ERR_NOT_A_NETNS: EXIT_USAGE,
  NSPROXY_ERR_LISTEN_FDS: EXIT_USAGE,
  NSPROXY_ERR_RUNTIME_MISSING: EXIT_USAGE,
  NSPROXY_ERR_CONTAINER_NOT_FOUND: EXIT_USAGE,
  NSPROXY_ERR_NO_ADDRESS: EXIT_USAGE,
  NSPROXY_ERR_CONTAINER_NOT_RUNNING: EXIT_FAILURE,
  NSPROXY_ERR_RUNTIME_FAILED: EXIT_FAILURE,
  NSPROXY_ERR_NOT_READY: EXIT_FAILURE,
  NSPROXY_ERR_TARGET_EXITED: EXIT_FAILURE,
  NSPROXY_ERR_LISTEN_FAILED: EXIT_FAILURE,
  NSPROXY_ERR_ENTER_NETNS: EXIT_FAILURE,
  NSPROXY_ERR_TARGET_ACCESS: EXIT_FAILURE,
  NSPROXY_ERR_TARGET_FOREIGN: EXIT_USAGE,
  NSPROXY_ERR_INTERNAL: EXIT_FAILURE,
} as const;

export type ErrorCode = keyof typeof codes;

export class NsproxyError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NsproxyError';
    this.code = code;
    this.exitCode = codes[code];
  }
}

/** The errno code ('ENOENT') of a Node or addon error, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/**
 * An error caused by the user's input (a file, a key, a flag). The CLI prints
 * its message without a stack trace; the message names the file/key and the fix.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Throws a UserError when `cond` is false. */
export function check(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new UserError(typeof message === 'function' ? message() : message);
}

/** Turns a Node fs error into a UserError that names the file and what to do. */
export function fsError(err: unknown, path: string, action: string): Error {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return new UserError(`${path}: not found (while trying to ${action}).`);
    case 'EACCES':
    case 'EPERM':
      return new UserError(`${path}: permission denied (while trying to ${action}).`);
    case 'ENOSPC':
      return new UserError(`${path}: no space left on the device (while trying to ${action}). Finished files are intact; free some space and run the same command again to resume.`);
    case 'EROFS':
      return new UserError(`${path}: read-only file system (while trying to ${action}). Mount it read-write, or write the output somewhere else.`);
    case 'ELOOP':
      return new UserError(`${path}: too many levels of symbolic links (a link that leads back to itself, while trying to ${action}). Fix or remove the link.`);
    case 'EISDIR':
      return new UserError(`${path}: is a directory, expected a file (while trying to ${action}).`);
    default:
      return err instanceof Error ? err : new Error(String(err));
  }
}

/** Thrown by a command whose outcome is an exit code other than 0 without an error to print (it said why). */
export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit code ${code}`);
    this.name = 'ExitCode';
  }
}

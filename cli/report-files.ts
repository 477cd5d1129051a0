/**
 * Writing the audit report's files (`rekey audit --html/--csv`, the demo's rekey-report.html).
 * A path that cannot be written is refused before the audit runs, with the reason in words, and a
 * write that fails later says which file and why.
 */
import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** A report file that cannot be written: reported on stderr, exit 1. */
export class ReportFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReportFileError';
  }
}

const reasonOf = (error: unknown): string => {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'its directory does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    default:
      return error instanceof Error ? error.message : String(error);
  }
};

/** Throws ReportFileError unless `path` can be created or overwritten; returns its absolute path. */
export function checkWritable(path: string, what: string): string {
  const absolute = resolve(path);
  let target = dirname(absolute);
  try {
    const stat = statSync(absolute, { throwIfNoEntry: false });
    if (stat?.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (stat) target = absolute;
    else if (!statSync(target).isDirectory())
      throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(target, constants.W_OK);
  } catch (error) {
    throw new ReportFileError(`cannot write the ${what} to ${absolute}: ${reasonOf(error)}`);
  }
  return absolute;
}

/** Writes the file (mode 0644: a report holds no secret), naming it in the error if that fails. */
export function writeReportFile(path: string, content: string, what: string): string {
  const absolute = resolve(path);
  try {
    writeFileSync(absolute, content, { encoding: 'utf8', mode: 0o644 });
  } catch (error) {
    throw new ReportFileError(`cannot write the ${what} to ${absolute}: ${reasonOf(error)}`);
  }
  return absolute;
}

/**
 * The `rekey` command line: rotate, audit, demo, sync.
 *
 * Conventions, the same for every command: `--help` (exit 0) and `rekey --version`; a wrong flag,
 * a missing required option or a bad value prints an error on stderr and exits 1; data goes to
 * stdout (`--json` where the output is data), progress and errors to stderr; colors only when the
 * stream is a terminal and NO_COLOR is unset. Each command reports its own exit code through
 * `setExitCode` (rotate: 0 rotated, 2 stopped safely; audit: 3 with --fail-on findings; demo: 1 if
 * a check failed); main() returns it to bin/rekey.mjs. The rotate, demo and sync modules are
 * imported when their command runs, so `--help` stays fast and never loads the handlers.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { AccountId } from '../contract/organization.ts';
import { rotationInputProblems, SERVICE_NAMES, ServiceName } from '../contract/schemas.ts';
import { auditCommand } from './audit.ts';
import type { JsonValue } from './local-runner.ts';
import { paintFor } from './progress.ts';
import { unsupportedOperationMessage } from './unsupported-operation.ts';

/** A problem with what the user typed: reported on stderr, exit 1, nothing called. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface RotateFlags {
  user?: string;
  /** Rotate the user's service-specific credential for this service (SERVICE_NAMES) instead of its access key. */
  service?: string;
  /** The member account the user is in (default: the hub's own). */
  account?: string;
  dryRun?: boolean;
  reason?: string;
  input?: string;
  /** false with --no-wait. */
  wait: boolean;
  json?: boolean;
  synth?: boolean;
  executionName?: string;
}

/**
 * The execution input from the flags, validated as the workflow would validate it, so a bad
 * request fails here, before any synth or AWS call. `--input` is passed on exactly as typed.
 */
export function rotationInputFrom(flags: RotateFlags): JsonValue {
  let raw: JsonValue;
  if (flags.input !== undefined) {
    try {
      raw = JSON.parse(flags.input) as JsonValue;
    } catch (error) {
      throw new UsageError(
        `--input is not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  } else if (flags.user !== undefined) {
    if (flags.account !== undefined) {
      const account = AccountId.safeParse(flags.account);
      if (!account.success) {
        throw new UsageError(
          `--account ${account.error.issues[0]?.message ?? 'is invalid'} (got "${flags.account}")`,
        );
      }
    }
    if (flags.service !== undefined && !ServiceName.safeParse(flags.service).success) {
      throw new UsageError(`--service must be one of ${SERVICE_NAMES.join(', ')} (got "${flags.service}")`);
    }
    raw = {
      userName: flags.user,
      ...(flags.service === undefined ? {} : { serviceName: flags.service }),
      ...(flags.account === undefined ? {} : { accountId: flags.account }),
      ...(flags.dryRun ? { dryRun: true } : {}),
      ...(flags.reason === undefined ? {} : { reason: flags.reason }),
    };
  } else {
    throw new UsageError(
      flags.service === undefined
        ? 'rotate needs --user NAME (or --input JSON)'
        : '--service needs --user NAME (whose service-specific credential to rotate)',
    );
  }
  const problems = rotationInputProblems(raw);
  if (problems.length > 0) throw new UsageError(`invalid rotation input: ${problems.join('; ')}`);
  return raw;
}

/** Readable and unique: the user's lock is owned by the execution, so a name is never reused. */
function executionNameFor(input: JsonValue): string {
  const { userName, serviceName, accountId } = input as {
    userName: string;
    serviceName?: string;
    accountId?: string;
  };
  // cassandra.amazonaws.com -> cassandra: the name stays readable and within 80 characters.
  const who = serviceName ? `${userName}-${serviceName.split('.')[0]}` : userName;
  const user = who.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, accountId ? 27 : 40);
  const stamp = new Date().toISOString().replace(/[-:]|\.\d+Z$/g, '');
  // A member account's: `rekey-<accountId>-...` (the audit names its executions the same way).
  const head = accountId ? `rekey-${accountId}` : 'cli';
  return `${head}-${user}-${stamp}-${randomBytes(3).toString('hex')}`;
}

/** Exit codes of a rotate or demo ended by a signal (the shell's convention: 128 + the signal's number). */
const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

async function rotate(flags: RotateFlags): Promise<number> {
  const input = rotationInputFrom(flags);
  const [{ DEFAULT_TEMPLATE_PATH, loadDefinition }, { prepareLocalEnv }, runner, progress, roles] =
    await Promise.all([
      import('./definition.ts'),
      import('./local-env.ts'),
      import('./local-runner.ts'),
      import('./progress.ts'),
      import('./deployed-roles.ts'),
    ]);
  if (flags.executionName !== undefined && !runner.isValidExecutionName(flags.executionName)) {
    throw new UsageError('--execution-name must be 1-80 letters, digits, - and _');
  }
  // With --json, stdout carries only the result; progress goes to stderr.
  const stream = flags.json ? process.stderr : process.stdout;
  const paint = paintFor(stream);
  const say = (line: string) => stream.write(`${line}\n`);

  const { definition, bindings } = loadDefinition({ log: say, ...(flags.synth ? { synth: true } : {}) });
  const env = await prepareLocalEnv({ log: say });
  // Against an emulator each step runs as its deployed role, as in AWS (there it already does).
  const emulated = await roles.emulatorRoles({
    template: () => roles.readTemplate(DEFAULT_TEMPLATE_PATH),
    env,
  });
  if (emulated) {
    say(
      paint(
        'dim',
        `Emulator at ${emulated.endpoint}: each step runs as its deployed role from the template, not as you`,
      ),
    );
  }
  const executionName = flags.executionName ?? executionNameFor(input);
  say(
    paint(
      'dim',
      `Execution ${executionName} (Ctrl-C stops and cleans up; if the process is killed, resume with --execution-name ${executionName})`,
    ),
  );
  // Ctrl-C or SIGTERM stops the execution as a console Stop would; the run then waits for the
  // step in flight and cleans up (a key it made and never handed out, the user's lock) before
  // it ends with the signal's exit code. A second signal leaves at once.
  const controller = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(SIGNAL_EXIT[signal] ?? 130);
    signalled = signal;
    process.stderr.write(
      `\nrekey rotate: ${signal}: stopping the execution, then cleaning up (again to leave at once)\n`,
    );
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result: Awaited<ReturnType<typeof runner.runRotation>>;
  try {
    result = await runner.runRotation({
      input,
      definition,
      bindings,
      env,
      noWait: !flags.wait,
      executionName,
      signal: controller.signal,
      onEvent: progress.progressPrinter({ definition, noWait: !flags.wait, write: say, paint }),
      ...(emulated ? { roles: emulated } : {}),
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    emulated?.close();
  }
  const interrupted = signalled !== undefined && result.status === 'ABORTED';
  const code = interrupted ? (SIGNAL_EXIT[signalled ?? 'SIGINT'] ?? 130) : runner.exitCodeFor(result);
  if (flags.json) {
    const { executionArn, status, error, cause, lastState } = result;
    const document = progress.finalDocument(result);
    const summary = {
      executionName,
      executionArn,
      status,
      exitCode: code,
      outcome: runner.outcomeOf(document),
    };
    process.stdout.write(
      `${JSON.stringify({ ...summary, error, cause, lastState, state: document }, null, 2)}\n`,
    );
  } else {
    say('');
    for (const line of progress.summaryLines(result, paint)) say(line);
  }
  if (interrupted) process.stderr.write(`rekey: the rotation was stopped (${signalled}) and cleaned up\n`);
  else if (result.status !== 'SUCCEEDED')
    process.stderr.write(`rekey: the rotation failed: ${result.error}\n`);
  return code;
}

export interface DemoFlags {
  json?: boolean;
  /** @default DEMO_REPORT_FILE, in the current directory */
  report?: string;
  python?: string;
  concurrency?: number;
}

async function demo(flags: DemoFlags): Promise<number> {
  const [
    { DemoInterrupted, DemoPrerequisiteError, runDemo },
    { DEMO_REPORT_FILE, demoHtmlReport, jsonReport, reportLines },
    { checkWritable, writeReportFile },
  ] = await Promise.all([import('./demo.ts'), import('./demo-report.ts'), import('./report-files.ts')]);
  const err = process.stderr;
  // Refused before anything starts: a demo that cannot write its report would end in an error.
  const reportFile = checkWritable(flags.report ?? DEMO_REPORT_FILE, 'HTML report');
  const paint = paintFor(err);
  err.write(
    `${paint('bold', 'rekey demo')}: the whole job (seed, audit, rotate, report) on a local AWS emulator; no AWS account is used\n`,
  );
  const controller = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      // A second Ctrl-C: leave now (the exit hook of runDemo still kills the emulator by its pid).
      process.exit(SIGNAL_EXIT[signal] ?? 130);
    }
    signalled = signal;
    err.write(`\nrekey demo: ${signal}: stopping what the demo started...\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const report = await runDemo({
      log: (line) => err.write(`${line}\n`),
      paint,
      signal: controller.signal,
      ...(flags.python ? { python: flags.python } : {}),
      ...(flags.concurrency ? { concurrency: flags.concurrency } : {}),
    });
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(jsonReport(report), null, 2)}\n`);
    } else {
      process.stdout.write(`\n${reportLines(report, paintFor(process.stdout)).join('\n')}\n`);
    }
    const written = writeReportFile(reportFile, demoHtmlReport(report), 'HTML report');
    // The last line: the page to open (on stderr with --json, whose stdout is the document).
    (flags.json ? err : process.stdout).write(`The audit report (open it in a browser): ${written}\n`);
    const failed = [...report.checks, ...report.acrossAccounts.checks].filter((c) => !c.ok);
    if (failed.length > 0) {
      err.write(`rekey demo: ${failed.length} check(s) against the emulator failed (marked ✗ above)\n`);
      return 1;
    }
    return 0;
  } catch (error) {
    if (error instanceof DemoInterrupted) {
      err.write(`rekey demo: ${error.message}\n`);
      // The one place the CLI exits by itself: rotations in flight cannot be cancelled half-way
      // and would go on retrying against the stopped emulator. stderr is written synchronously.
      process.exit(SIGNAL_EXIT[signalled ?? 'SIGINT'] ?? 130);
    }
    if (error instanceof DemoPrerequisiteError) throw new UsageError(error.message);
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export interface SyncCommandFlags {
  secretId: string;
  profile: string;
  credentialsFile?: string;
  json?: boolean;
  quiet?: boolean;
}

async function sync(flags: SyncCommandFlags): Promise<number> {
  const { SyncError, syncCredentials, syncMessage } = await import('./sync.ts');
  try {
    const result = await syncCredentials(flags);
    if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else if (!flags.quiet) process.stdout.write(`${syncMessage(result)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof SyncError) throw new UsageError(error.message);
    throw error;
  }
}

const positiveInt = (max: number) => (value: string) => {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1 || Number(value) > max) {
    throw new InvalidArgumentError(`must be a whole number from 1 to ${max}`);
  }
  return Number(value);
};

/** An option whose empty value would silently mean its default (e.g. an unset shell variable). */
const nonEmpty = (value: string) => {
  if (value.trim() === '') throw new InvalidArgumentError('must not be empty');
  return value;
};

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** The settings every command shares: errors are thrown to main() (exit 1), not process.exit. */
function conventions(command: Command): Command {
  return command.showHelpAfterError('(add --help for usage)').exitOverride();
}

export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = conventions(
    new Command('rekey')
      .description('Rotate AWS IAM access keys safely (the rekey state machine, run locally)')
      .version(version, '-V, --version', 'print the version of rekey'),
  );
  conventions(
    program
      .command('rotate')
      .description('Run one rotation locally: the synthesized state machine, each step its real handler')
      .option('--user <name>', 'IAM user whose access key to rotate')
      .option(
        '--service <name>',
        `rotate the user's service-specific credential for this service instead (${SERVICE_NAMES.join(' or ')})`,
      )
      .option('--account <id>', "the member account the user is in (12 digits; default: the hub's own)")
      .option('--dry-run', 'plan only: report what would happen, change nothing')
      .option('--reason <text>', 'why this rotation runs (kept with the execution)')
      .addOption(
        new Option('--input <json>', 'the raw execution input, as the console takes it').conflicts([
          'user',
          'service',
          'account',
          'dryRun',
          'reason',
        ]),
      )
      .option('--no-wait', 'make every Wait state instant (adoption and delete waits)')
      .option('--json', 'print the final result as JSON on stdout (progress goes to stderr)')
      .option('--synth', 'synthesize the CDK app even if the template looks current')
      .option(
        '--execution-name <name>',
        "reuse a killed run's execution name to resume it (it still owns the user's lock)",
      )
      .addHelpText(
        'after',
        '\nExit codes: 0 rotated (or dry run), 2 stopped safely, 1 error; 130 (Ctrl-C) or 143 (SIGTERM): the\n' +
          'execution was stopped, then cleaned up (a key it made and never handed out removed, the lock released).',
      )
      .action(async (flags: RotateFlags) => setExitCode(await rotate(flags))),
  );
  program.addCommand(
    conventions(auditCommand({ setExitCode })).addHelpText(
      'after',
      '\nExit codes: 0 done, 3 a finding of a --fail-on type exists, 1 error.',
    ),
  );
  conventions(
    program
      .command('demo')
      .description(
        'See rekey do its whole job on a local AWS emulator (moto): seed an account and an organization, audit, rotate, report',
      )
      .option('--json', 'print the report as JSON on stdout (progress goes to stderr)')
      .option('--python <command>', 'the Python that has moto[server] installed', nonEmpty, 'python3')
      .option('--concurrency <n>', 'rotations run at the same time (default 3)', positiveInt(10))
      .option(
        '--report <file>',
        'where to write the audit report page (default ./rekey-report.html)',
        nonEmpty,
      )
      .addHelpText(
        'after',
        '\nNeeds Python 3 with moto[server] (python3 -m pip install "moto[server]>=5,<6"). Starts servers on\n' +
          '127.0.0.1 only and stops them when it ends, also on Ctrl-C. Exit codes: 0 done, 1 error.',
      )
      .action(async (flags: DemoFlags) => setExitCode(await demo(flags))),
  );
  conventions(
    program
      .command('sync')
      .description(
        'Write the current key from Secrets Manager into a profile of the shared credentials file (cron-safe)',
      )
      .requiredOption('--secret-id <id>', 'the secret rekey stores the key in, e.g. rekey/alice')
      .requiredOption('--profile <name>', 'the profile to write, e.g. alice')
      .option(
        '--credentials-file <path>',
        'the file to write (default: $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials)',
      )
      .option('--json', 'print the result as JSON on stdout')
      .option('--quiet', 'print nothing on success (errors still go to stderr)')
      .addHelpText(
        'after',
        '\nReads the AWSCURRENT version; other profiles, comments and blank lines are kept; the file is\n' +
          'written atomically with mode 0600 and only when the key changed. Exit codes: 0 done, 1 error.',
      )
      .action(async (flags: SyncCommandFlags) => setExitCode(await sync(flags))),
  );
  return program;
}

/** Commander's own outcomes that are not errors. */
const SUCCESS_CODES = new Set(['commander.helpDisplayed', 'commander.version']);

/** Runs the CLI and returns its exit code (process.exit only for an interrupted demo: output may still be flushing). */
export async function main(argv: string[] = process.argv): Promise<number> {
  let exitCode = 0;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    // Commander has already printed its message (usage errors on stderr, help and version on stdout).
    if (error instanceof CommanderError) return SUCCESS_CODES.has(error.code) ? 0 : 1;
    // An emulator lacking an API: name the operation (and its switch) instead of the SDK's parse error.
    const message =
      unsupportedOperationMessage(error) ?? (error instanceof Error ? error.message : String(error));
    process.stderr.write(`rekey: ${message}\n`);
    return 1;
  }
}

/**
 * The `rekey` command line. `rekey rotate` runs the synthesized state machine on this machine,
 * each Task calling its real handler, against whatever AWS the SDK's default chain points at.
 * Exit codes: 0 rotated (or dry run), 2 stopped safely, 1 error.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { RotationInput } from '../lambdas/shared/schemas.ts';
import { loadDefinition } from './definition.ts';
import { prepareLocalEnv } from './local-env.ts';
import {
  type ExitCode,
  exitCodeFor,
  isValidExecutionName,
  type JsonValue,
  outcomeOf,
  runRotation,
} from './local-runner.ts';
import { finalDocument, paintFor, progressPrinter, summaryLines } from './progress.ts';

/** A problem with what the user typed: reported on stderr, exit 1, nothing called. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface RotateFlags {
  user?: string;
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
    raw = {
      userName: flags.user,
      ...(flags.dryRun ? { dryRun: true } : {}),
      ...(flags.reason === undefined ? {} : { reason: flags.reason }),
    };
  } else {
    throw new UsageError('rotate needs --user NAME (or --input JSON)');
  }
  const parsed = RotationInput.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.length > 0 ? i.path.join('.') : 'input'}: ${i.message}`,
    );
    throw new UsageError(`invalid rotation input: ${problems.join('; ')}`);
  }
  return raw;
}

/** Readable and unique: the user's lock is owned by the execution, so a name is never reused. */
function executionNameFor(input: JsonValue): string {
  const user = (input as { userName: string }).userName.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40);
  const stamp = new Date().toISOString().replace(/[-:]|\.\d+Z$/g, '');
  return `cli-${user}-${stamp}-${randomBytes(3).toString('hex')}`;
}

async function rotate(flags: RotateFlags): Promise<ExitCode> {
  const input = rotationInputFrom(flags);
  if (flags.executionName !== undefined && !isValidExecutionName(flags.executionName)) {
    throw new UsageError('--execution-name must be 1-80 letters, digits, - and _');
  }
  // With --json, stdout carries only the result; progress goes to stderr.
  const stream = flags.json ? process.stderr : process.stdout;
  const paint = paintFor(stream);
  const say = (line: string) => stream.write(`${line}\n`);

  const { definition, bindings } = loadDefinition({ log: say, ...(flags.synth ? { synth: true } : {}) });
  const env = await prepareLocalEnv({ log: say });
  const executionName = flags.executionName ?? executionNameFor(input);
  say(
    paint(
      'dim',
      `Execution ${executionName} (if interrupted, resume with --execution-name ${executionName})`,
    ),
  );
  const result = await runRotation({
    input,
    definition,
    bindings,
    env,
    noWait: !flags.wait,
    executionName,
    onEvent: progressPrinter({ definition, noWait: !flags.wait, write: say, paint }),
  });
  const code = exitCodeFor(result);
  if (flags.json) {
    const { executionArn, status, error, cause, lastState } = result;
    const document = finalDocument(result);
    const summary = { executionName, executionArn, status, exitCode: code, outcome: outcomeOf(document) };
    process.stdout.write(
      `${JSON.stringify({ ...summary, error, cause, lastState, state: document }, null, 2)}\n`,
    );
  } else {
    say('');
    for (const line of summaryLines(result, paint)) say(line);
  }
  if (result.status === 'FAILED') process.stderr.write(`rekey: the rotation failed: ${result.error}\n`);
  return code;
}

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export function buildProgram(setExitCode: (code: ExitCode) => void): Command {
  const program = new Command('rekey')
    .description('Rotate AWS IAM access keys safely (the rekey state machine, run locally)')
    .version(version)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  program
    .command('rotate')
    .description('Run one rotation locally: the synthesized state machine, each step its real handler')
    .option('--user <name>', 'IAM user whose access key to rotate')
    .option('--dry-run', 'plan only: report what would happen, change nothing')
    .option('--reason <text>', 'why this rotation runs (kept with the execution)')
    .addOption(
      new Option('--input <json>', 'the raw execution input, as the console takes it').conflicts([
        'user',
        'dryRun',
        'reason',
      ]),
    )
    .option('--no-wait', 'make every Wait state instant (adoption and delete waits)')
    .option('--json', 'print the final result as JSON on stdout (progress goes to stderr)')
    .option('--synth', 'synthesize the CDK app even if the template looks current')
    .option(
      '--execution-name <name>',
      "reuse an interrupted run's execution name to resume it (it still owns the user's lock)",
    )
    .exitOverride()
    .action(async (flags: RotateFlags) => setExitCode(await rotate(flags)));
  return program;
}

/** Runs the CLI and returns its exit code (never calls process.exit: output may still be flushing). */
export async function main(argv: string[] = process.argv): Promise<number> {
  let exitCode: ExitCode = 0;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    // Commander has already printed its own usage errors; --help and --version end here with 0.
    if (error instanceof CommanderError) return error.exitCode;
    process.stderr.write(`rekey: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

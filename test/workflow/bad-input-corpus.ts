/**
 * The bad-input corpus: requests rekey must refuse with a clear error before any AWS call.
 * test/workflow/bad-input.test.ts runs every entry, the state-machine inputs through the real
 * engine and handlers, the command lines through the real `rekey` program, and counts what
 * reached the emulator. Adding a case is one line here.
 *
 * Only obviously bad requests belong here: a rule that refused a legitimate input would be a bug.
 * The accepted neighbours of these cases (64 characters, every allowed punctuation mark, dryRun
 * false, a 256-character reason) are checked in test/lambdas/rotation/plan/plan.test.ts.
 */

/** A state-machine execution input and how the plan step must word its refusal. */
export interface BadExecutionInput {
  what: string;
  input: unknown;
  /** The field the error message must name ('input' when the document itself is wrong). */
  field: string;
  message: RegExp;
}

/** A `rekey` command line (without `rekey`) and what it must print on stderr. */
export interface BadCommandLine {
  what: string;
  argv: string[];
  message: RegExp;
  /** Every refusal of what the user typed exits 1 (cli/main.ts). */
  exitCode: 1;
}

const sm = (what: string, input: unknown, field: string, message: RegExp): BadExecutionInput => ({
  what,
  input,
  field,
  message,
});
const cli = (what: string, argv: string[], message: RegExp): BadCommandLine => ({
  what,
  argv,
  message,
  exitCode: 1,
});

const ONLY = /userName may contain only letters, digits and \+=,\.@_-/;
const NOT_A_STRING = /userName must be a string/;
const NOT_AN_OBJECT = /input must be a JSON object/;
const DRY_RUN = /dryRun must be true or false/;
const SERVICE = /serviceName must be one of cassandra\.amazonaws\.com, codecommit\.amazonaws\.com/;

export const BAD_EXECUTION_INPUTS: BadExecutionInput[] = [
  // userName: missing, empty, too long
  sm('no userName', {}, 'userName', /userName is required/),
  sm('an empty userName', { userName: '' }, 'userName', /userName must not be empty/),
  sm('a userName of 65 characters', { userName: 'a'.repeat(65) }, 'userName', /at most 64 characters/),
  sm('a userName of 10,000 characters', { userName: 'a'.repeat(10_000) }, 'userName', /at most 64/),
  // userName: characters IAM does not allow
  sm('a space inside userName', { userName: 'al ice' }, 'userName', ONLY),
  sm('a leading space', { userName: ' alice' }, 'userName', ONLY),
  sm('a trailing line break', { userName: 'alice\n' }, 'userName', ONLY),
  sm('a tab', { userName: 'al\tice' }, 'userName', ONLY),
  sm('a NUL character', { userName: 'alice\u0000' }, 'userName', ONLY),
  sm('a zero-width space', { userName: 'al\u200bice' }, 'userName', ONLY),
  sm('a path (slash)', { userName: 'team/alice' }, 'userName', ONLY),
  sm('a backslash', { userName: 'team\\alice' }, 'userName', ONLY),
  sm('a relative path', { userName: '../alice' }, 'userName', ONLY),
  sm('an ARN instead of a name', { userName: 'arn:aws:iam::123456789012:user/alice' }, 'userName', ONLY),
  sm('a wildcard', { userName: 'alice*' }, 'userName', ONLY),
  sm('a Cyrillic look-alike "а"', { userName: '\u0430lice' }, 'userName', ONLY),
  sm('fullwidth letters', { userName: '\uff41\uff4c\uff49\uff43\uff45' }, 'userName', ONLY),
  sm('an accented letter', { userName: 'alicé' }, 'userName', ONLY),
  sm('an emoji', { userName: 'alice\u{1f511}' }, 'userName', ONLY),
  sm('a comma (valid in IAM, not in a secret name)', { userName: 'al,ice' }, 'userName', /contains ','/),
  // userName: wrong types
  sm('a number as userName', { userName: 42 }, 'userName', NOT_A_STRING),
  sm('null as userName', { userName: null }, 'userName', NOT_A_STRING),
  sm('a boolean as userName', { userName: true }, 'userName', NOT_A_STRING),
  sm('an array as userName', { userName: ['alice'] }, 'userName', NOT_A_STRING),
  sm('an object as userName', { userName: { S: 'alice' } }, 'userName', NOT_A_STRING),
  // dryRun and reason
  sm('dryRun "yes"', { userName: 'alice', dryRun: 'yes' }, 'dryRun', DRY_RUN),
  sm('dryRun "true" as a string', { userName: 'alice', dryRun: 'true' }, 'dryRun', DRY_RUN),
  sm('dryRun 1', { userName: 'alice', dryRun: 1 }, 'dryRun', DRY_RUN),
  sm('dryRun null', { userName: 'alice', dryRun: null }, 'dryRun', DRY_RUN),
  sm('a number as reason', { userName: 'alice', reason: 7 }, 'reason', /reason must be a string/),
  sm('an object as reason', { userName: 'alice', reason: { t: 'x' } }, 'reason', /must be a string/),
  sm('a reason of 257 characters', { userName: 'alice', reason: 'r'.repeat(257) }, 'reason', /at most 256/),
  // serviceName: only the services whose credentials rekey rotates
  sm(
    'an unsupported serviceName',
    { userName: 'alice', serviceName: 's3.amazonaws.com' },
    'serviceName',
    SERVICE,
  ),
  sm(
    'a serviceName without its domain',
    { userName: 'alice', serviceName: 'cassandra' },
    'serviceName',
    SERVICE,
  ),
  sm(
    'a serviceName in capitals',
    { userName: 'a', serviceName: 'CODECOMMIT.AMAZONAWS.COM' },
    'serviceName',
    SERVICE,
  ),
  sm('an empty serviceName', { userName: 'alice', serviceName: '' }, 'serviceName', SERVICE),
  sm(
    'a list of serviceNames',
    { userName: 'a', serviceName: ['cassandra.amazonaws.com'] },
    'serviceName',
    SERVICE,
  ),
  sm('null as serviceName', { userName: 'alice', serviceName: null }, 'serviceName', SERVICE),
  // fields that do not exist
  sm('an unknown field', { userName: 'alice', force: true }, 'force', /unknown field\(s\): force/),
  sm('a misspelt field', { username: 'alice' }, 'username', /unknown field\(s\): username/),
  sm('a differently cased field', { UserName: 'alice' }, 'UserName', /unknown field\(s\): UserName/),
  sm('an executionId from the caller', { userName: 'alice', executionId: 'x' }, 'executionId', /unknown/),
  sm(
    'the request wrapped in "input"',
    { input: { userName: 'alice' } },
    'input',
    /unknown field\(s\): input/,
  ),
  sm('the request wrapped in "Payload"', { Payload: { userName: 'alice' } }, 'Payload', /unknown field/),
  sm(
    'a "__proto__" key',
    JSON.parse('{"userName":"alice","__proto__":{"dryRun":true}}'),
    '__proto__',
    /unknown/,
  ),
  sm('a "constructor" key', { userName: 'alice', constructor: { prototype: {} } }, 'constructor', /unknown/),
  // the document itself
  sm('a string instead of an object', 'alice', 'input', NOT_AN_OBJECT),
  sm('an array instead of an object', [{ userName: 'alice' }], 'input', NOT_AN_OBJECT),
  sm('a number instead of an object', 7, 'input', NOT_AN_OBJECT),
  sm('a boolean instead of an object', true, 'input', NOT_AN_OBJECT),
  sm('every problem at once', { userName: '', dryRun: 'yes', extra: 1 }, 'dryRun', /empty.*dryRun.*extra/),
];

const REQUIRED = (option: string) => new RegExp(`required option '${option}' not specified`);
const ROTATE_FLAGS = /cannot be used with option/;

export const BAD_COMMAND_LINES: BadCommandLine[] = [
  // rotate
  cli('rotate without --user', ['rotate'], /rotate needs --user NAME \(or --input JSON\)/),
  cli('rotate --user without a value', ['rotate', '--user'], /option '--user <name>' argument missing/),
  cli('rotate --user with illegal characters', ['rotate', '--user', 'not a name!'], ONLY),
  cli('rotate --user ""', ['rotate', '--user', ''], /userName must not be empty/),
  cli('rotate --user of 65 characters', ['rotate', '--user', 'a'.repeat(65)], /at most 64 characters/),
  cli('rotate --user with a comma', ['rotate', '--user', 'al,ice', '--dry-run'], /contains ','/),
  cli('rotate --user ARN', ['rotate', '--user', 'arn:aws:iam::123456789012:user/alice'], ONLY),
  cli('rotate --reason too long', ['rotate', '--user', 'alice', '--reason', 'r'.repeat(257)], /at most 256/),
  cli('rotate --user and --input', ['rotate', '--user', 'a', '--input', '{"userName":"a"}'], ROTATE_FLAGS),
  cli('rotate --dry-run and --input', ['rotate', '--dry-run', '--input', '{"userName":"a"}'], ROTATE_FLAGS),
  cli(
    'rotate --reason and --input',
    ['rotate', '--reason', 'x', '--input', '{"userName":"a"}'],
    ROTATE_FLAGS,
  ),
  cli('rotate --input not JSON', ['rotate', '--input', 'userName=alice'], /--input is not valid JSON/),
  cli('rotate --input truncated JSON', ['rotate', '--input', '{"userName": "alice"'], /not valid JSON/),
  cli('rotate --input ""', ['rotate', '--input', ''], /--input is not valid JSON/),
  cli('rotate --input null', ['rotate', '--input', 'null'], NOT_AN_OBJECT),
  cli('rotate --input a JSON string', ['rotate', '--input', '"alice"'], NOT_AN_OBJECT),
  cli(
    'rotate --input an extra field',
    ['rotate', '--input', '{"userName":"a","x":1}'],
    /unknown field\(s\): x/,
  ),
  cli(
    'rotate --input a "__proto__" key',
    ['rotate', '--input', '{"userName":"a","__proto__":{}}'],
    /__proto__/,
  ),
  cli('rotate with an unknown option', ['rotate', '--user', 'alice', '--bogus'], /unknown option '--bogus'/),
  cli('rotate with a stray argument', ['rotate', '--user', 'alice', 'bob'], /too many arguments/),
  cli(
    'rotate --dry-run with a value',
    ['rotate', '--user', 'alice', '--dry-run=yes'],
    /unknown option '--dry-run=yes'/,
  ),
  cli(
    'rotate --execution-name with spaces',
    ['rotate', '--user', 'a', '--execution-name', 'a b'],
    /1-80 letters/,
  ),
  cli('rotate --execution-name ""', ['rotate', '--user', 'alice', '--execution-name', ''], /1-80 letters/),
  cli('rotate --execution-name of 81', ['rotate', '--user', 'a', '--execution-name', 'e'.repeat(81)], /1-80/),
  cli(
    'rotate --service unknown',
    ['rotate', '--user', 'alice', '--service', 'git'],
    /--service must be one of/,
  ),
  cli(
    'rotate --service without --user',
    ['rotate', '--service', 'codecommit.amazonaws.com'],
    /--service needs --user/,
  ),
  cli('rotate --service without a value', ['rotate', '--user', 'alice', '--service'], /argument missing/),
  // audit
  cli('audit --max-age-days 0', ['audit', '--max-age-days', '0'], /must be between 1 and 3650/),
  cli('audit --max-age-days -5', ['audit', '--max-age-days', '-5'], /must be a whole number of days/),
  cli('audit --max-age-days 1.5', ['audit', '--max-age-days', '1.5'], /must be a whole number of days/),
  cli('audit --max-age-days ninety', ['audit', '--max-age-days', 'ninety'], /must be a whole number/),
  cli('audit --max-age-days 3651', ['audit', '--max-age-days', '3651'], /must be between 1 and 3650/),
  cli('audit --max-age-days without a value', ['audit', '--max-age-days'], /argument missing/),
  cli('audit --unused-days 0', ['audit', '--unused-days', '0'], /must be between 1 and 3650/),
  cli('audit --warn-days -1', ['audit', '--warn-days', '-1'], /must be a whole number of days/),
  cli('audit --warn-days 1e3', ['audit', '--warn-days', '1e3'], /must be a whole number of days/),
  cli('audit --fail-on an unknown type', ['audit', '--fail-on', 'OLD_KEYS'], /unknown finding type OLD_KEYS/),
  cli(
    'audit --fail-on one unknown of two',
    ['audit', '--fail-on', 'OLD_KEY,NOPE'],
    /unknown finding type NOPE/,
  ),
  cli(
    'audit --fail-on no type',
    ['audit', '--fail-on', ','],
    /argument ',' is invalid\. name at least one of/,
  ),
  cli('audit with a stray argument', ['audit', 'everything'], /too many arguments for 'audit'/),
  cli('audit with a misspelt option', ['audit', '--jsn'], /unknown option '--jsn'/),
  // demo
  cli(
    'demo --python ""',
    ['demo', '--python', ''],
    /option '--python <command>' argument '' is invalid\. must not be empty/,
  ),
  // sync
  cli('sync without options', ['sync'], REQUIRED('--secret-id <id>')),
  cli('sync without --profile', ['sync', '--secret-id', 'rekey/alice'], REQUIRED('--profile <name>')),
  cli('sync without --secret-id', ['sync', '--profile', 'alice'], REQUIRED('--secret-id <id>')),
  cli('sync --secret-id ""', ['sync', '--secret-id', '', '--profile', 'alice'], /--secret-id must name/),
  cli(
    'sync --profile with brackets',
    ['sync', '--secret-id', 'rekey/a', '--profile', '[a]'],
    /invalid --profile/,
  ),
  cli(
    'sync --profile with a space',
    ['sync', '--secret-id', 'rekey/a', '--profile', ' a'],
    /invalid --profile/,
  ),
  cli(
    'sync --profile a line break',
    ['sync', '--secret-id', 'rekey/a', '--profile', 'a\nb'],
    /invalid --profile/,
  ),
  cli('sync --profile ""', ['sync', '--secret-id', 'rekey/a', '--profile', ''], /invalid --profile ""/),
  cli(
    'sync --credentials-file ""',
    ['sync', '--secret-id', 'rekey/a', '--profile', 'a', '--credentials-file', ''],
    /must not be empty/,
  ),
  // demo (refused before it starts its emulator)
  cli('demo --concurrency 0', ['demo', '--concurrency', '0'], /must be a whole number from 1 to 10/),
  cli('demo --concurrency 11', ['demo', '--concurrency', '11'], /must be a whole number from 1 to 10/),
  cli('demo --concurrency two', ['demo', '--concurrency', 'two'], /must be a whole number from 1 to 10/),
  // the program
  cli('no command at all', [], /^Usage: rekey \[options\] \[command\]/),
  cli('an unknown command', ['spin'], /unknown command 'spin'/),
  cli('a misspelt command', ['rotat', '--user', 'alice'], /unknown command 'rotat'/),
  cli('an unknown global option', ['--bogus'], /unknown option '--bogus'/),
];

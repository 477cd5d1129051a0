/**
 * (c) Each Lambda bundle as the stack builds it (main.ts synthesizes first: NodejsFunction + esbuild,
 * minified ESM, the SDK inside), its size, and how long a fresh Node process takes to import it
 * (the module-scope work of a cold start: parsing, SDK clients, environment validation), with the
 * environment the template gives the function; side by side with the same functions built from a
 * baseline git ref, synthesized in a temporary git worktree that is removed afterwards.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../cli/definition.ts';
import { count, heading, median, millis, print, progress, reproduce, table } from './report.ts';
import { type DeployedFunction, deployedFunctions } from './template.ts';

export interface BundleBenchOptions {
  /** Fresh processes per bundle and build; the median is printed. */
  runs: number;
  /** The git ref whose bundles the current ones are compared with. */
  baseline: string;
}

/**
 * The commit before issue 13's bundle work (the `layout` branch's head when it started): the
 * bundles it made are the baseline of the ratio.
 */
export const BASELINE_COMMIT = 'b8210a4';

export const BUNDLE_DEFAULTS: BundleBenchOptions = { runs: 15, baseline: BASELINE_COMMIT };

/**
 * Values for the variables the template fills in at deploy time (ARNs, names): valid for each
 * handler's environment check, never called (importing a handler makes no AWS call).
 */
const DEPLOY_TIME_VALUES: Record<string, string> = {
  REKEY_KMS_KEY_ID: 'arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000000',
  REKEY_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:rekey-notifications',
  REKEY_LOCK_TABLE: 'rekey-locks',
  REKEY_SECRET_READER_ROLES:
    'arn:aws:iam::123456789012:role/rekey-verify-new-key,arn:aws:iam::123456789012:role/rekey-verify-rotation',
  REKEY_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:rekey-rotation',
  REKEY_KEY_ID_CACHE_TABLE: 'rekey-key-id-cache',
};

/** What the Lambda runtime adds: the role's credentials (the bundles load only with them). */
const RUNTIME_VALUES: Record<string, string> = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'ASIAEXAMPLEEXAMPLE01',
  AWS_SECRET_ACCESS_KEY: 'not-a-secret',
  AWS_SESSION_TOKEN: 'not-a-token',
};

/** Runs in the child: the import alone, timed inside the process, printed as JSON. */
const IMPORT_SCRIPT =
  'const c=process.cpuUsage(),t=performance.now();await import(process.argv[1]);const u=process.cpuUsage(c);' +
  'process.stdout.write(JSON.stringify({ms:performance.now()-t,cpuMs:(u.user+u.system)/1000}))';

interface Measured {
  /** `await import(bundle)` inside the process. */
  importMs: number[];
  /** CPU time of the import (user + system): steadier than wall time on a loaded machine. */
  cpuMs: number[];
  /** The whole process, spawn to exit. */
  processMs: number[];
}

interface Build {
  label: string;
  fn: DeployedFunction;
  file: string;
  env: Record<string, string>;
  measured: Measured;
}

function spawnTimed(args: string[], env: Record<string, string>): { ms: number; stdout: string } {
  const started = performance.now();
  const child = spawnSync(process.execPath, args, { env, encoding: 'utf8', timeout: 60_000 });
  const ms = performance.now() - started;
  if (child.status !== 0)
    throw new Error(
      `node ${args.slice(0, 2).join(' ')} exited ${child.status ?? child.signal}: ${child.stderr.slice(0, 2000)}`,
    );
  return { ms, stdout: child.stdout };
}

function functionEnv(name: string, variables: Record<string, unknown>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(variables)) {
    if (typeof value === 'string') env[key] = value;
    else {
      const placeholder = DEPLOY_TIME_VALUES[key];
      if (placeholder === undefined)
        throw new Error(`${name}: ${key} is set at deploy time and bench/bundles.ts has no value for it`);
      env[key] = placeholder;
    }
  }
  return env;
}

const git = (args: string[], cwd = REPO_ROOT) =>
  execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** A baseline ref checked out and synthesized in a temporary git worktree. */
export interface Baseline {
  commit: string;
  /** The worktree: the baseline's repository root. */
  dir: string;
  templatePath: string;
  remove: () => void;
}

/**
 * Synthesizes `ref` in a temporary worktree and returns its template path and a cleanup. The
 * worktree shares this checkout's node_modules when the lockfiles match (else `npm ci` there),
 * and runs `cdk synth` directly: no npm script, whose pre-step could reinstall through the link.
 */
function synthesizeBaseline(ref: string): Baseline {
  const commit = git(['rev-parse', '--verify', `${ref}^{commit}`]);
  const dir = join(mkdtempSync(join(tmpdir(), 'rekey-baseline-')), 'tree');
  git(['worktree', 'add', '--detach', dir, commit]);
  const remove = () => {
    try {
      git(['worktree', 'remove', '--force', dir]);
    } catch {
      rmSync(dir, { recursive: true, force: true });
      git(['worktree', 'prune']);
    }
  };
  try {
    const sameLock =
      readFileSync(join(dir, 'package-lock.json'), 'utf8') ===
      readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8');
    if (sameLock) symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    else {
      progress(`The baseline's package-lock.json differs: npm ci in ${dir}`);
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error', '--ignore-scripts'], {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
    progress(`Synthesizing the baseline ${ref} (${commit.slice(0, 10)}) in ${dir}`);
    execFileSync(join(REPO_ROOT, 'node_modules', '.bin', 'cdk'), ['synth', '--quiet'], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const templatePath = join(dir, 'cdk.out', 'RekeyStack.template.json');
    if (!existsSync(templatePath)) throw new Error(`the baseline's synth wrote no ${templatePath}`);
    return { commit, dir, templatePath, remove };
  } catch (error) {
    remove();
    throw error;
  }
}

/**
 * Runs `fn` with `ref` synthesized in a temporary worktree (synthesizeBaseline), which is removed
 * afterwards, also when the run is interrupted (a `finally` does not run on a signal).
 */
export async function withBaseline<T>(ref: string, fn: (baseline: Baseline) => Promise<T>): Promise<T> {
  const baseline = synthesizeBaseline(ref);
  const onSignal = (signal: NodeJS.Signals) => {
    baseline.remove();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    return await fn(baseline);
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    baseline.remove();
  }
}

function build(label: string, fn: DeployedFunction): Build {
  return {
    label,
    fn,
    file: join(fn.assetDir, 'index.mjs'),
    env: { PATH: process.env.PATH ?? '', ...RUNTIME_VALUES, ...functionEnv(fn.name, fn.environment) },
    measured: { importMs: [], cpuMs: [], processMs: [] },
  };
}

function measure(b: Build): void {
  const run = spawnTimed(['--input-type=module', '-e', IMPORT_SCRIPT, pathToFileURL(b.file).href], b.env);
  const { ms, cpuMs } = JSON.parse(run.stdout) as { ms: number; cpuMs: number };
  b.measured.importMs.push(ms);
  b.measured.cpuMs.push(cpuMs);
  b.measured.processMs.push(run.ms);
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KB`;
const times = (value: number) => `${value.toFixed(2)}×`;

export async function bundlesBench(options: BundleBenchOptions): Promise<void> {
  const current = deployedFunctions();
  await withBaseline(options.baseline, async (baseline) => {
    const before = new Map(deployedFunctions(baseline.templatePath).map((fn) => [fn.name, fn]));
    const pairs = current.map((fn) => {
      const old = before.get(fn.name);
      return { now: build('now', fn), base: old ? build('baseline', old) : undefined };
    });
    const emptyEnv = { PATH: process.env.PATH ?? '', ...RUNTIME_VALUES };
    const empty: number[] = [];
    // Interleaved, round by round: a burst of load on the machine hits every bundle and build alike.
    for (let i = 0; i < options.runs; i++) {
      empty.push(spawnTimed(['-e', ''], emptyEnv).ms);
      for (const { now, base } of pairs) {
        measure(now);
        if (base) measure(base);
      }
      progress(`(c) round ${i + 1} of ${options.runs}`);
    }
    const emptyMs = median(empty);
    const rows: string[][] = [];
    const goal: string[][] = [];
    for (const { now, base } of pairs) {
      const bytes = statSync(now.file).size;
      const importNow = median(now.measured.importMs);
      const aboveNow = median(now.measured.processMs) - emptyMs;
      const baseBytes = base ? statSync(base.file).size : undefined;
      const importBase = base ? median(base.measured.importMs) : undefined;
      const aboveBase = base ? median(base.measured.processMs) - emptyMs : undefined;
      rows.push([
        now.fn.name,
        baseBytes === undefined ? '—' : kb(baseBytes),
        kb(bytes),
        importBase === undefined ? '—' : millis(importBase),
        millis(importNow),
        importBase === undefined ? '—' : times(importNow / importBase),
        aboveBase === undefined ? '—' : millis(aboveBase),
        millis(aboveNow),
        aboveBase === undefined ? '—' : times(aboveNow / aboveBase),
        base ? millis(median(base.measured.cpuMs)) : '—',
        millis(median(now.measured.cpuMs)),
        base ? times(median(now.measured.cpuMs) / median(base.measured.cpuMs)) : '—',
      ]);
      goal.push([now.fn.name, millis(importNow), millis(Math.max(0, importNow - 100))]);
    }
    print(
      ...heading('(c) Lambda bundles: minified size and cold import time, against a baseline build'),
      `Now: this run's cdk synth. Baseline: ${options.baseline} (${baseline.commit.slice(0, 10)}), synthesized in a temporary`,
      'git worktree (removed afterwards). Both: esbuild, minified ESM, node24 target, the SDK inside, each with its',
      "template's environment (NODE_OPTIONS included) and the role credentials the runtime adds.",
      `Import: \`await import(bundle)\` inside a fresh \`node\` (${process.version}) process, i.e. above what an empty`,
      `process costs. Above empty: the whole process (spawn to exit) less an empty \`node -e ""\` (${millis(emptyMs)}).`,
      `Medians of ${options.runs} processes per bundle and build, interleaved round by round. Ratio: now / baseline.`,
      "Import CPU: the import's user + system time, steadier than wall times when other processes share the cores.",
      '',
      ...table(
        [
          'function',
          'baseline',
          'now',
          'import (baseline)',
          'import (now)',
          'ratio',
          'above empty (baseline)',
          'above empty (now)',
          'ratio',
          'import CPU (baseline)',
          'import CPU (now)',
          'ratio',
        ],
        rows,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
      ),
      '',
      'The goal beyond issue 13: an import of at most 100 ms. Distance from it (import now - 100 ms):',
      ...table(['function', 'import (now)', 'over 100 ms'], goal, [1, 2]),
      '',
      'Local figures: a Lambda cold start adds fetching the code and starting the runtime, and a 256 MB arm64 function',
      'gets a fraction of a vCPU, so its Init Duration differs from these; they compare the bundles with each other.',
      reproduce(
        `bundles${options.runs === BUNDLE_DEFAULTS.runs ? '' : ` --runs ${options.runs}`}${
          options.baseline === BUNDLE_DEFAULTS.baseline ? '' : ` --baseline ${options.baseline}`
        }`,
      ),
    );
    progress(`(c) ${count(pairs.length)} bundles measured`);
  });
}

/**
 * (c) Each Lambda bundle as the stack builds it (main.ts synthesizes first: NodejsFunction + esbuild,
 * minified ESM, the SDK inside), its size, and how long a fresh Node process takes to import it
 * (the module-scope work of a cold start: parsing, SDK clients, environment validation), with the
 * environment the template gives the function.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { count, heading, median, millis, print, progress, reproduce, table } from './report.ts';
import { deployedFunctions } from './template.ts';

export interface BundleBenchOptions {
  /** Fresh processes per bundle and variant; the median is printed. */
  runs: number;
}

export const BUNDLE_DEFAULTS: BundleBenchOptions = { runs: 15 };

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
};

/** Runs in the child: the import alone, timed inside the process, printed as JSON. */
const IMPORT_SCRIPT =
  'const c=process.cpuUsage(),t=performance.now();await import(process.argv[1]);const u=process.cpuUsage(c);' +
  'process.stdout.write(JSON.stringify({ms:performance.now()-t,cpuMs:(u.user+u.system)/1000}))';

interface Measured {
  importMs: number[];
  /** CPU time of the import (user + system): steadier than wall time on a loaded machine. */
  cpuMs: number[];
  processMs: number[];
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

export async function bundlesBench(options: BundleBenchOptions): Promise<void> {
  const functions = deployedFunctions();
  const base = { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1' };

  // An empty process: what Node itself costs before any import.
  const empty = Array.from({ length: options.runs }, () => spawnTimed(['-e', ''], base).ms);

  const rows: string[][] = [];
  let deployedOptions = '';
  for (const fn of functions) {
    const file = join(fn.assetDir, 'index.mjs');
    const bytes = statSync(file).size;
    const gzipped = gzipSync(readFileSync(file)).length;
    const env: Record<string, string> = { ...base, ...functionEnv(fn.name, fn.environment) };
    deployedOptions = env.NODE_OPTIONS ?? '';
    const { NODE_OPTIONS: _deployed, ...withoutOptions } = env;
    const variants: Record<'deployed' | 'plain', Measured> = {
      deployed: { importMs: [], cpuMs: [], processMs: [] },
      plain: { importMs: [], cpuMs: [], processMs: [] },
    };
    // Interleaved, so a burst of load on the machine hits both variants alike.
    for (let i = 0; i < options.runs; i++) {
      for (const [variant, variantEnv] of [
        ['deployed', env],
        ['plain', withoutOptions],
      ] as const) {
        const run = spawnTimed(
          ['--input-type=module', '-e', IMPORT_SCRIPT, pathToFileURL(file).href],
          variantEnv,
        );
        const { ms, cpuMs } = JSON.parse(run.stdout) as { ms: number; cpuMs: number };
        variants[variant].importMs.push(ms);
        variants[variant].cpuMs.push(cpuMs);
        variants[variant].processMs.push(run.ms);
      }
    }
    progress(
      `(c) ${fn.name}: ${count(bytes)} bytes, import ${millis(median(variants.deployed.importMs))} (median of ${options.runs})`,
    );
    rows.push([
      fn.name,
      `${fn.memoryMb} MB`,
      `${(bytes / 1024).toFixed(0)} KB`,
      `${(gzipped / 1024).toFixed(0)} KB`,
      millis(median(variants.deployed.importMs)),
      millis(median(variants.deployed.cpuMs)),
      millis(median(variants.plain.importMs)),
      millis(median(variants.deployed.processMs)),
    ]);
  }

  print(
    ...heading('(c) Lambda bundles: minified size and cold import time in a fresh Node process'),
    `Bundles from this run's cdk synth (cdk.out asset folders: esbuild, minified ESM, node24 target, the SDK inside).`,
    `Import: the time \`await import(bundle)\` takes inside a fresh \`node\` (${process.version}) process, with the`,
    `function's environment from the template; median of ${options.runs} processes per bundle and variant, interleaved.`,
    `"as deployed" keeps the template's NODE_OPTIONS (${deployedOptions || 'none'}); "plain" drops it. CPU time (user + system)`,
    'of the same import is steadier than its wall time when other processes compete for the cores.',
    `Process: the whole as-deployed process, spawn to exit; an empty \`node -e ""\` takes ${millis(median(empty))} (median) on its own.`,
    '',
    ...table(
      [
        'function',
        'memory',
        'minified',
        'gzip',
        'import (as deployed)',
        'its CPU time',
        'import (plain)',
        'process',
      ],
      rows,
      [1, 2, 3, 4, 5, 6, 7],
    ),
    '',
    'Local figures: a Lambda cold start adds fetching the code and starting the runtime, and a 256 MB arm64 function',
    'gets a fraction of a vCPU, so its Init Duration differs from these; they compare the bundles with each other.',
    reproduce(`bundles${options.runs === BUNDLE_DEFAULTS.runs ? '' : ` --runs ${options.runs}`}`),
  );
}

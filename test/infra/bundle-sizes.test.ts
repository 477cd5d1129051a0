/**
 * The Lambda bundles the stack deploys stay small: each main bundle of the synthesized template
 * (cdk.out, which the global setup synthesizes) within its budget, the opt-in clients in files of
 * their own, and neither the SDK's default credential chain nor its event-stream codec nor the
 * other SDK code a Lambda never runs (its stand-ins instead) inside.
 * Sizes are deterministic, so they are tested; import times stay in `npm run bench -- bundles`
 * (docs/performance.md).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deployedFunctions } from '../../bench/template.ts';
import { readCdkContextConfig } from '../../cli/local-env.ts';
import type { FunctionName } from '../../contract/functions.ts';
import { loadConfig } from '../../infra/config.ts';
import { optInBundles } from '../../infra/constructs/rekey-function.ts';

/** cdk.out is synthesized from cdk.json's configuration: its opt-in files are that configuration's. */
const config = loadConfig(readCdkContextConfig());
const optIns = (name: string) => optInBundles(name as FunctionName, config);

const KB = 1024;

/** The budgets of issue 13: a workflow step's main bundle, and the audit's. */
const BUDGET_KB = { step: 300, audit: 450 } as const;

interface Bundle {
  name: string;
  bytes: number;
}

/** Every bundle over its budget. */
function budgetProblems(bundles: readonly Bundle[], budgetKb: { step: number; audit: number }): string[] {
  return bundles.flatMap(({ name, bytes }) => {
    const budget = name === 'audit' ? budgetKb.audit : budgetKb.step;
    return bytes > budget * KB
      ? [`${name}: ${(bytes / KB).toFixed(1)} KB minified, over its ${budget} KB budget`]
      : [];
  });
}

const functions = deployedFunctions();
const mainBundle = (assetDir: string) => join(assetDir, 'index.mjs');

/** Text only the code a deployed bundle leaves out holds. */
const LEFT_OUT = [
  // The SDK's default credential chain.
  'Could not load credentials from any providers',
  '@aws-sdk/credential-provider-sso',
  // The event-stream codec.
  'EventStreamCodec',
  // The JavaScript SHA-256 (one of its round constants), the adaptive mode's rate limiter, the
  // IMDS region lookup.
  '1116352408',
  'measuredTxRate',
  '/latest/meta-data/placement/region',
  // An SDK client's package.json beyond its name and version.
  'aws-sdk-js-v3.git',
  // The local runner's checks around each call (lambdas/shared/clients/emulator-calls.ts).
  'the emulator refused it',
  // The functions' descriptions, which only the stack reads (one of them).
  'checks the user and its keys, takes the user lock',
];

/** Text of the stand-ins in their place (lambdas/shared/deployed/). */
const STAND_INS = [
  'a deployed rekey Lambda signs only with',
  "JavaScript SHA-256; Node's crypto has none",
  "leave out the SDK's adaptive retry mode",
  'the region lookup in instance metadata',
  "leave out the local runner's call checks",
];

/** Every file the template deploys: each function's main bundle and its opt-in files. */
function* bundleFiles(): Generator<{ where: string; code: string }> {
  for (const fn of functions)
    for (const file of ['index.mjs', ...optIns(fn.name).map((c) => `${c}.mjs`)])
      yield { where: `${fn.name} ${file}`, code: readFileSync(join(fn.assetDir, file), 'utf8') };
}

describe('the Lambda bundles', () => {
  it('are the eleven functions of the template', () => {
    expect(functions.map((fn) => fn.name).sort()).toEqual(
      [
        'audit',
        'check-last-used',
        'cleanup',
        'create-second-key',
        'deactivate-old-key',
        'delete-key',
        'notify',
        'plan',
        'reactivate-old-key',
        'verify-new-key',
        'verify-rotation',
      ].sort(),
    );
  });

  it('keep every main bundle within its budget: 300 KB a step, 450 KB the audit', () => {
    const bundles = functions.map((fn) => ({ name: fn.name, bytes: statSync(mainBundle(fn.assetDir)).size }));
    expect(budgetProblems(bundles, BUDGET_KB)).toEqual([]);
  });

  it('would report a bundle over its budget', () => {
    const bundles = [
      { name: 'plan', bytes: 300 * KB },
      { name: 'delete-key', bytes: 300 * KB + 1 },
      { name: 'audit', bytes: 449 * KB },
    ];
    expect(budgetProblems(bundles, BUDGET_KB)).toEqual([
      'delete-key: 300.0 KB minified, over its 300 KB budget',
    ]);
    expect(budgetProblems(bundles, { step: 100, audit: 100 })).toHaveLength(3);
  });

  it('put each opt-in client in a file of its own, next to the functions that load it', () => {
    for (const fn of functions) {
      const expected = optIns(fn.name);
      for (const client of ['cloudtrail', 'security-hub', 'member-sts'] as const)
        expect(existsSync(join(fn.assetDir, `${client}.mjs`)), `${fn.name}: ${client}.mjs`).toBe(
          expected.includes(client),
        );
    }
  });

  it('hold none of the SDK code a Lambda never runs (the default credential chain...), but stand-ins', () => {
    for (const { where, code } of bundleFiles()) {
      // (Booleans, not toMatch: a failure would print the whole bundle.)
      for (const text of LEFT_OUT) expect(code.includes(text), `${where}: ${text}`).toBe(false);
      for (const text of STAND_INS) expect(code.includes(text), `${where}: ${text}`).toBe(true);
      // DynamoDB's endpoint-discovery cache: the stand-in, wherever the client is.
      expect(code.includes('capacity should be positive number'), where).toBe(false);
      expect(code.includes('DynamoDB endpoint discovery'), where).toBe(code.includes('DescribeEndpoints'));
    }
    // The main bundles' multi-region signer (EventBridge, STS): the SigV4-only stand-in, wherever a
    // client asks for it.
    for (const fn of functions) {
      const code = readFileSync(mainBundle(fn.assetDir), 'utf8');
      expect(code.includes('Neither CRT nor JS SigV4a implementation is available'), fn.name).toBe(false);
      expect(code.includes('leave out SigV4a signing'), fn.name).toBe(code.includes('sigv4aDependency'));
    }
    const notify = functions.find((fn) => fn.name === 'notify');
    expect(
      notify && readFileSync(mainBundle(notify.assetDir), 'utf8').includes('leave out SigV4a signing'),
    ).toBe(true);
  });
});

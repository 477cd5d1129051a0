import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type CfnElement, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type FunctionName,
  functionFolder,
  HANDLER_METADATA_KEY,
  LAMBDA_METADATA_KEY,
  STEP_NAMES,
  STEPS,
  type StepName,
  type StepSpec,
} from '../../contract/functions.ts';
import {
  lambdaEnvironment,
  loadConfig,
  MAX_LAMBDA_TIMEOUT_SECONDS,
  stepTimeoutSeconds,
} from '../../infra/config.ts';
import { RekeyFunction } from '../../infra/constructs/rekey-function.ts';
import { CLIENT_CONFIG, worstCaseCallMs } from '../../lambdas/shared/clients/config.ts';
import { functionIdsByStep, functionOf, logicalIds, synth } from './helpers.ts';

describe('the rekey functions', () => {
  const { resources, config, stack } = synth();

  it('are one function per step, found by their rekey:handler metadata', () => {
    const byStep = functionIdsByStep(resources);
    expect([...byStep.keys()].sort()).toEqual([...STEP_NAMES].sort());
    // No function without the metadata, the local runner could not bind it; except the audit,
    // which no Task runs (test/infra/audit.test.ts).
    const audit = stack.resolve(
      stack.getLogicalId(stack.audit.function.lambdaFunction.node.defaultChild as CfnElement),
    );
    for (const id of logicalIds(resources, 'AWS::Lambda::Function').filter((id) => id !== audit)) {
      expect(resources[id]?.Metadata?.[HANDLER_METADATA_KEY], id).toBeTypeOf('string');
    }
  });

  it('every function, the audit included, names its handler folder in its rekey:lambda metadata', () => {
    // Local runs against an emulator find each Lambda's role by this name (cli/deployed-roles.ts).
    const named = logicalIds(resources, 'AWS::Lambda::Function').map(
      (id) => resources[id]?.Metadata?.[LAMBDA_METADATA_KEY] as FunctionName,
    );
    expect(named.sort()).toEqual([...STEP_NAMES, 'audit'].sort());
    for (const name of named)
      expect(existsSync(join('lambdas', functionFolder(name), 'index.ts')), String(name)).toBe(true);
  });

  it.each(STEP_NAMES)('%s runs nodejs24.x on arm64 with JSON logs, X-Ray and 256 MB', (step) => {
    const fn = functionOf(resources, step);
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 256,
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogFormat: 'JSON', ApplicationLogLevel: 'INFO' },
    });
  });

  /**
   * The derivation written out from the client settings, as the spec: every attempt of every
   * sequential call uses up its connection and request limits, every SDK retry waits its longest
   * backoff, the verify loop adds an attempt per verifyAttempts and its sleeps, plus 10 s.
   */
  function expectedTimeout(step: StepName, c: { verifyAttempts: number; verifyBaseDelayMs: number }): number {
    const { maxAttempts, requestHandler } = CLIENT_CONFIG;
    const perAttempt = requestHandler.connectionTimeout + requestHandler.requestTimeout;
    let backoff = 0;
    for (let i = 0; i < maxAttempts - 1; i++) backoff += Math.min(1_000 * 2 ** i, 20_000) + 5_000;
    const perCall = maxAttempts * perAttempt + backoff;
    const spec: StepSpec = STEPS[step];
    const loop = spec.verifyLoop ? c.verifyAttempts : 0;
    const sleeps = spec.verifyLoop ? c.verifyBaseDelayMs * (2 ** (c.verifyAttempts - 1) - 1) : 0;
    const own = Math.ceil(((spec.calls + loop) * perCall + sleeps) / 1000) + 10;
    if (!spec.waitsForSteps) return own;
    // The cleanup first waits out the longest other step: one of an aborted execution may still run.
    const others = STEP_NAMES.filter((other) => !(STEPS[other] as StepSpec).waitsForSteps);
    return own + Math.max(...others.map((other) => expectedTimeout(other, c)));
  }

  it.each(STEP_NAMES)(
    "%s's timeout is derived from its calls and the clients' limits, under 900 s",
    (step) => {
      const timeout = functionOf(resources, step).Properties.Timeout;
      expect(timeout).toBe(expectedTimeout(step, config));
      expect(timeout).toBe(stepTimeoutSeconds(step, config));
      expect(timeout).toBeLessThanOrEqual(MAX_LAMBDA_TIMEOUT_SECONDS);
      // Longer than every call of its worst path at its worst.
      expect(timeout * 1000).toBeGreaterThan(STEPS[step].calls * worstCaseCallMs());
    },
  );

  it("verify-new-key's timeout follows verifyAttempts and verifyBaseDelayMs; the others do not", () => {
    const { resources: patient } = synth({ verifyAttempts: 8, verifyBaseDelayMs: 2000 });
    const slow = { verifyAttempts: 8, verifyBaseDelayMs: 2000 };
    expect(functionOf(patient, 'verify-new-key').Properties.Timeout).toBe(
      expectedTimeout('verify-new-key', slow),
    );
    expect(functionOf(patient, 'verify-new-key').Properties.Timeout).toBeGreaterThan(
      functionOf(resources, 'verify-new-key').Properties.Timeout,
    );
    // The cleanup waits out the longest step, verify-new-key here.
    expect(functionOf(patient, 'cleanup').Properties.Timeout).toBe(expectedTimeout('cleanup', slow));
    for (const step of STEP_NAMES.filter((s) => s !== 'verify-new-key' && s !== 'cleanup')) {
      expect(functionOf(patient, step).Properties.Timeout, step).toBe(
        functionOf(resources, step).Properties.Timeout,
      );
    }
  });

  it("refuses a timeout set by hand on a workflow step: it could be shorter than the step's worst path", () => {
    const stack = new Stack(new App(), 'HandSet');
    expect(
      () =>
        new RekeyFunction(stack, 'Fn', {
          name: 'create-second-key',
          config: loadConfig({}),
          resources: { hubAccountId: '123456789012', kmsKeyId: 'k', topicArn: 't', lockTable: 'l' },
          timeout: Duration.minutes(2),
        }),
    ).toThrow("Fn: the create-second-key step's timeout is derived from its calls, not set");
  });

  it('refuses a verify configuration whose worst case a Lambda could not outlast', () => {
    // The largest verifyAttempts the default base delay allows, every Lambda within 900 s, and one
    // more. The binding one is the cleanup: it waits out verify-new-key, which still fits.
    const fits = (verifyAttempts: number) =>
      STEP_NAMES.every(
        (step) => stepTimeoutSeconds(step, { verifyAttempts, verifyBaseDelayMs: 1000 }) <= 900,
      );
    let largest = 1;
    while (fits(largest + 1)) largest++;
    expect(
      stepTimeoutSeconds('verify-new-key', { verifyAttempts: largest + 1, verifyBaseDelayMs: 1000 }),
    ).toBeLessThanOrEqual(900);
    expect(() => loadConfig({ verifyAttempts: largest })).not.toThrow();
    expect(() => loadConfig({ verifyAttempts: largest + 1 })).toThrow(
      /verifyAttempts: verifyAttempts and verifyBaseDelayMs make verify-new-key run up to \d+ s; the cleanup after an aborted or timed-out execution waits that out and runs up to \d+ s; a Lambda runs at most 900 s/,
    );
  });

  it.each(STEP_NAMES)('%s logs to its own log group, kept for the configured retention', (step) => {
    const logGroupId = functionOf(resources, step).Properties.LoggingConfig.LogGroup.Ref;
    const logGroup = resources[logGroupId];
    expect(logGroup?.Type).toBe('AWS::Logs::LogGroup');
    expect(logGroup?.Properties?.RetentionInDays).toBe(config.logRetentionDays);
    const others = STEP_NAMES.filter((s) => s !== step).map(
      (s) => functionOf(resources, s).Properties.LoggingConfig.LogGroup.Ref,
    );
    expect(others).not.toContain(logGroupId);
  });

  const ORGANIZATION_ONLY = [
    'REKEY_MEMBER_ROLE_PREFIX',
    'REKEY_SECRETS_LOCATION',
    'REKEY_ORGANIZATION_ID',
    'REKEY_ORGANIZATION_SCOPE',
  ];

  it.each(STEP_NAMES)('%s gets exactly the variables its step declares', (step) => {
    const variables = functionOf(resources, step).Properties.Environment.Variables;
    // The opt-in tag is optional and unset by default, and the organization's variables are set
    // only with `organization` (test/infra/config.test.ts): left out rather than set empty.
    const unset = new Set<string>(['REKEY_OPT_IN_TAG', ...ORGANIZATION_ONLY]);
    const declared = STEPS[step].env.filter((k) => !unset.has(k));
    expect(Object.keys(variables).sort()).toEqual([...declared, 'POWERTOOLS_SERVICE_NAME'].sort());
    // No NODE_OPTIONS: the bundles ship no source map (docs/performance.md, "Source maps").
    expect(variables).toMatchObject({ POWERTOOLS_SERVICE_NAME: 'rekey' });
  });

  it('passes configuration values through unchanged', () => {
    const plain = lambdaEnvironment(config, {
      hubAccountId: '123456789012',
      kmsKeyId: 'k',
      topicArn: 't',
      lockTable: 'l',
    });
    for (const step of STEP_NAMES) {
      const variables = functionOf(resources, step).Properties.Environment.Variables;
      for (const [key, value] of Object.entries(variables)) {
        if (typeof value === 'string' && key.startsWith('REKEY_')) {
          expect(value, `${step} ${key}`).toBe(plain[key as keyof typeof plain]);
        }
      }
    }
  });

  it('point the environment at the deployed resources', () => {
    const vars = (step: (typeof STEP_NAMES)[number]) =>
      functionOf(resources, step).Properties.Environment.Variables;
    const [table] = logicalIds(resources, 'AWS::DynamoDB::Table');
    const [topic] = logicalIds(resources, 'AWS::SNS::Topic');
    expect(vars('plan').REKEY_LOCK_TABLE).toEqual({ Ref: table });
    expect(vars('notify').REKEY_TOPIC_ARN).toEqual({ Ref: topic });
    const secretsKeyAlias = Object.values(resources).find(
      (r) => r.Type === 'AWS::KMS::Alias' && r.Properties?.AliasName === 'alias/rekey-secrets',
    );
    expect(vars('create-second-key').REKEY_KMS_KEY_ID).toEqual(secretsKeyAlias?.Properties?.TargetKeyId);
  });

  it('sets the opt-in tag and protected users from the configuration', () => {
    const { resources: custom } = synth({ optInTag: 'rekey:opt-in', protectedUsers: ['a', 'b'] });
    expect(functionOf(custom, 'plan').Properties.Environment.Variables).toMatchObject({
      REKEY_OPT_IN_TAG: 'rekey:opt-in',
      REKEY_PROTECTED_USERS: 'a,b',
    });
  });

  it('applies the configured log retention', () => {
    const { resources: custom } = synth({ logRetentionDays: 30 });
    for (const step of STEP_NAMES) {
      const logGroupId = functionOf(custom, step).Properties.LoggingConfig.LogGroup.Ref;
      expect(custom[logGroupId]?.Properties?.RetentionInDays, step).toBe(30);
    }
  });
});

describe('the function bundle', () => {
  // One real esbuild run (the stack tests skip bundling): the options only show in the output.
  const outdir = mkdtempSync(join(tmpdir(), 'rekey-bundle-'));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it('is ESM with a require shim and the AWS SDK inside, without a source map', () => {
    // Prepare
    const app = new App({ outdir, context: { 'aws:cdk:enable-asset-metadata': true } });
    const stack = new Stack(app, 'BundleTest');
    const config = loadConfig({});
    new RekeyFunction(stack, 'Fn', {
      name: 'deactivate-old-key',
      config,
      resources: {
        hubAccountId: '123456789012',
        kmsKeyId: 'k',
        topicArn: 'arn:aws:sns:us-east-1:123456789012:t',
        lockTable: 'l',
      },
    });

    // Act
    const template = Template.fromStack(stack).toJSON() as {
      Resources: Record<string, { Type: string; Metadata?: Record<string, string> }>;
    };

    // Assess
    const fn = Object.values(template.Resources).find((r) => r.Type === 'AWS::Lambda::Function');
    const assetDir = join(outdir, fn?.Metadata?.['aws:asset:path'] ?? 'missing');
    const code = readFileSync(join(assetDir, 'index.mjs'), 'utf8');
    // (Booleans, not toMatch: a failure would print the whole ~1 MB bundle.)
    const banner = "import { createRequire } from 'module';const require = createRequire(import.meta.url);";
    expect(code.startsWith(banner)).toBe(true);
    expect(existsSync(join(assetDir, 'index.mjs.map'))).toBe(false);
    // Bundled, not resolved from the runtime's SDK: no SDK client is imported or required.
    // (The SDK's own error messages mention require("@aws-sdk/signature-v4-crt"): not a client.)
    expect(/(from|import\(|require\()\s*["']@aws-sdk\/client-/.test(code)).toBe(false);
    expect(code.includes('UpdateAccessKey')).toBe(true);
  });
});

/**
 * Shared by the infra tests: synthesize the stack without bundling, find a step's function by
 * its `rekey:handler` metadata, flatten a role's policies into comparable strings, and extract
 * the state machine definition with the CloudFormation tokens replaced by placeholders.
 */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { HANDLER_METADATA_KEY, STEP_NAMES, type StepName } from '../../contract/functions.ts';
import { loadConfig, type RekeyConfig } from '../../infra/config.ts';
import { RekeyStack } from '../../infra/rekey-stack.ts';
import { ACCOUNT } from '../../support/constants.ts';

export { ACCOUNT };
export const REGION = 'us-east-1';
export const PARTITION = 'aws';

/** The ARN a step's function stands for in a resolved definition. */
export const lambdaArn = (step: StepName) => `arn:${PARTITION}:lambda:${REGION}:${ACCOUNT}:function:${step}`;

export type Resource = {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
};
export type Resources = Record<string, Resource>;

export interface Synthesized {
  app: App;
  stack: RekeyStack;
  template: Template;
  config: RekeyConfig;
  resources: Resources;
}

const cache = new Map<string, Synthesized>();

/** Synthesize RekeyStack for a raw `rekey` configuration, without bundling (memoized per config). */
export function synth(rawConfig: Record<string, unknown> = {}): Synthesized {
  const cacheKey = JSON.stringify(rawConfig);
  const hit = cache.get(cacheKey);
  if (hit) return hit;
  const app = new App({
    context: { 'aws:cdk:bundling-stacks': [] },
    // The CloudFormation schema check costs ~3 s per synth; `npm run synth` runs it.
    builtinCloudFormationValidation: false,
  });
  const config = loadConfig(rawConfig);
  const stack = new RekeyStack(app, 'RekeyStack', { config });
  const template = Template.fromStack(stack);
  const result = { app, stack, template, config, resources: template.toJSON().Resources as Resources };
  cache.set(cacheKey, result);
  return result;
}

/** Logical ids of the resources of a type. */
export function logicalIds(resources: Resources, type: string): string[] {
  return Object.entries(resources)
    .filter(([, r]) => r.Type === type)
    .map(([id]) => id);
}

/** The one resource of a type a test is about; fails if there is none or several. */
export function onlyLogicalId(resources: Resources, type: string): string {
  const ids = logicalIds(resources, type);
  if (ids.length !== 1) throw new Error(`expected one ${type}, found ${ids.length}`);
  return ids[0] as string;
}

/** Logical id of each step's AWS::Lambda::Function, found through the handler metadata. */
export function functionIdsByStep(resources: Resources): Map<StepName, string> {
  const ids = new Map<StepName, string>();
  for (const id of logicalIds(resources, 'AWS::Lambda::Function')) {
    const step = resources[id]?.Metadata?.[HANDLER_METADATA_KEY];
    if (typeof step !== 'string') continue;
    if (ids.has(step as StepName)) throw new Error(`two functions carry ${HANDLER_METADATA_KEY}=${step}`);
    ids.set(step as StepName, id);
  }
  return ids;
}

/** The properties of AWS::Lambda::Function the tests look at. */
export interface FunctionResource {
  Type: 'AWS::Lambda::Function';
  Metadata: Record<string, unknown>;
  Properties: {
    Runtime: string;
    Architectures: string[];
    Handler: string;
    MemorySize: number;
    Timeout: number;
    Role: { 'Fn::GetAtt': [string, string] };
    LoggingConfig: { LogFormat: string; ApplicationLogLevel: string; LogGroup: { Ref: string } };
    TracingConfig: { Mode: string };
    Environment: { Variables: Record<string, unknown> };
  };
}

export function functionOf(resources: Resources, step: StepName): FunctionResource {
  const id = functionIdsByStep(resources).get(step);
  if (!id) throw new Error(`no function carries ${HANDLER_METADATA_KEY}=${step}`);
  return resources[id] as unknown as FunctionResource;
}

/**
 * A CloudFormation value as a string: pseudo parameters become the constants above,
 * `{Ref: X}` becomes `X`, `{Fn::GetAtt: [X, A]}` becomes `X.A` (or the step's placeholder
 * Lambda ARN when X is a rekey function), Fn::Join is joined.
 */
export function resolveValue(value: unknown, resources: Resources): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) throw new Error(`cannot resolve ${JSON.stringify(value)}`);
  const v = value as Record<string, unknown>;
  if (typeof v.Ref === 'string') {
    const pseudo: Record<string, string> = {
      'AWS::Partition': PARTITION,
      'AWS::Region': REGION,
      'AWS::AccountId': ACCOUNT,
      'AWS::URLSuffix': 'amazonaws.com',
    };
    return pseudo[v.Ref] ?? v.Ref;
  }
  const getAtt = v['Fn::GetAtt'];
  if (Array.isArray(getAtt)) {
    const [id, attribute] = getAtt as [string, string];
    const step = resources[id]?.Metadata?.[HANDLER_METADATA_KEY];
    if (attribute === 'Arn' && typeof step === 'string') return lambdaArn(step as StepName);
    return `${id}.${attribute}`;
  }
  const join = v['Fn::Join'];
  if (Array.isArray(join)) {
    const [separator, parts] = join as [string, unknown[]];
    return parts.map((p) => resolveValue(p, resources)).join(separator);
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

/** Every CloudFormation value inside `value` resolved as resolveValue does. */
export function resolveDeep(value: unknown, resources: Resources): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => resolveDeep(v, resources));
  const keys = Object.keys(value);
  if (keys.length === 1 && (keys[0] === 'Ref' || keys[0]?.startsWith('Fn::')))
    return resolveValue(value, resources);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveDeep(v, resources)]));
}

const asArray = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/**
 * Every permission a role has, one string per (effect, action, resource[, condition]):
 * `Allow iam:ListAccessKeys arn:aws:iam::123456789012:user/*`. Whatever route a permission takes
 * shows up: the role's inline Policies, an AWS::IAM::Policy or an AWS::IAM::ManagedPolicy that
 * names the role, and managed policies attached by ARN (as `Managed <arn>`).
 */
export function rolePermissions(resources: Resources, roleId: string): string[] {
  const role = resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role') throw new Error(`${roleId} is not a role`);
  const documents: unknown[] = [];
  for (const p of asArray(role.Properties?.Policies as { PolicyDocument: unknown }[] | undefined)) {
    documents.push(p.PolicyDocument);
  }
  for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) {
    for (const id of logicalIds(resources, type)) {
      const props = resources[id]?.Properties ?? {};
      const roles = asArray(props.Roles as unknown[]);
      if (roles.some((r) => (r as { Ref?: string }).Ref === roleId)) documents.push(props.PolicyDocument);
    }
  }
  const out: string[] = asArray(role.Properties?.ManagedPolicyArns as unknown[]).map(
    (arn) => `Managed ${resolveValue(arn, resources)}`,
  );
  for (const doc of documents) {
    for (const s of asArray((doc as { Statement: Record<string, unknown>[] }).Statement)) {
      if (s.NotAction || s.NotResource || s.Principal)
        throw new Error(`unexpected statement ${JSON.stringify(s)}`);
      const condition = s.Condition ? ` if ${JSON.stringify(resolveDeep(s.Condition, resources))}` : '';
      for (const action of asArray(s.Action as string[])) {
        for (const resource of asArray(s.Resource)) {
          out.push(`${s.Effect} ${action} ${resolveValue(resource, resources)}${condition}`);
        }
      }
    }
  }
  return out.sort();
}

/** A resource policy's statements (key, topic, ...), every CloudFormation value resolved. */
export function policyStatements(document: unknown, resources: Resources): Record<string, unknown>[] {
  const statements = asArray((document as { Statement?: unknown }).Statement);
  return statements.map((s) => resolveDeep(s, resources) as Record<string, unknown>);
}

/** The logical id X of `{Fn::GetAtt: [X, ...]}`; throws on anything else. */
export function getAttId(value: unknown): string {
  const getAtt = (value as { 'Fn::GetAtt'?: unknown } | undefined)?.['Fn::GetAtt'];
  if (!Array.isArray(getAtt) || typeof getAtt[0] !== 'string')
    throw new Error(`not a GetAtt: ${JSON.stringify(value)}`);
  return getAtt[0];
}

/** The role a function runs as. */
export function roleIdOf(fn: FunctionResource): string {
  return fn.Properties.Role['Fn::GetAtt'][0];
}

/** Permissions of the role of a step's function. */
export function stepPermissions(resources: Resources, step: StepName): string[] {
  return rolePermissions(resources, roleIdOf(functionOf(resources, step)));
}

/** Expand `actions x resources` into the strings rolePermissions produces. */
export function allow(actions: string[], resources: string[], condition?: unknown): string[] {
  const suffix = condition ? ` if ${JSON.stringify(condition)}` : '';
  return actions.flatMap((a) => resources.map((r) => `Allow ${a} ${r}${suffix}`));
}

export interface AslState {
  Type: string;
  Comment?: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  ResultPath?: string | null;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: Record<string, unknown>[];
  Retry?: Record<string, unknown>[];
  Catch?: { ErrorEquals: string[]; ResultPath?: string | null; Next: string }[];
  Seconds?: number;
  Error?: string;
  Cause?: string;
  CausePath?: string;
  [key: string]: unknown;
}
export interface AslDefinition {
  StartAt: string;
  States: Record<string, AslState>;
  TimeoutSeconds?: number;
  Comment?: string;
  QueryLanguage?: string;
  [key: string]: unknown;
}

/** The state machine's DefinitionString resolved to ASL, Lambda ARNs as `lambdaArn(step)`. */
export function definitionOf(resources: Resources): AslDefinition {
  const id = onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine');
  return JSON.parse(resolveValue(resources[id]?.Properties?.DefinitionString, resources)) as AslDefinition;
}

export { STEP_NAMES };

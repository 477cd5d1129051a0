/**
 * The Lambda functions as the synthesized template deploys them: memory, bundle folder in cdk.out
 * and environment. (b) prices each step with its function's memory; (c) imports each bundle.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type CfnTemplate, DEFAULT_TEMPLATE_PATH } from '../cli/definition.ts';
import { HANDLER_METADATA_KEY, type StepName } from '../contract/functions.ts';

export interface DeployedFunction {
  /** The step (`rekey:handler`), or the construct's name for a standalone Lambda (audit). */
  name: string;
  step?: StepName;
  memoryMb: number;
  architecture: string;
  /** The bundle's folder (cdk.out/asset.<hash>). */
  assetDir: string;
  /** Variables as in the template: strings, or CloudFormation tokens resolved only at deploy time. */
  environment: Record<string, unknown>;
}

const readTemplate = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as CfnTemplate;

/** How many resources of a CloudFormation type the stack deploys. */
export function resourceCount(type: string, templatePath = DEFAULT_TEMPLATE_PATH): number {
  return Object.values(readTemplate(templatePath).Resources ?? {}).filter((r) => r.Type === type).length;
}

export function deployedFunctions(templatePath = DEFAULT_TEMPLATE_PATH): DeployedFunction[] {
  const template = readTemplate(templatePath);
  return Object.entries(template.Resources ?? {})
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([logicalId, r]) => {
      const metadata = r.Metadata ?? {};
      const props = r.Properties ?? {};
      const asset = metadata['aws:asset:path'];
      if (typeof asset !== 'string')
        throw new Error(`function ${logicalId} has no bundled asset in the template`);
      const step = metadata[HANDLER_METADATA_KEY] as StepName | undefined;
      // RekeyStack/Audit/Function/Function/Resource -> audit
      const construct = String(metadata['aws:cdk:path'] ?? logicalId).split('/')[1] ?? logicalId;
      return {
        name: step ?? construct.toLowerCase(),
        ...(step ? { step } : {}),
        memoryMb: Number(props.MemorySize ?? 128),
        architecture: String((props.Architectures as string[] | undefined)?.[0] ?? 'x86_64'),
        assetDir: join(dirname(templatePath), asset),
        environment:
          (props.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {},
      };
    });
}

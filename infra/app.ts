/**
 * CDK app entry (cdk.json: `npx tsx infra/app.ts`). Environment-agnostic: synthesizes offline,
 * with no credentials; the account and region come from the deployment.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadConfig } from './config.ts';
import { RekeyStack } from './rekey-stack.ts';

const app = new App();
new RekeyStack(app, 'RekeyStack', {
  config: loadConfig(app.node),
  description: 'rekey: safe, automatic rotation of IAM user access keys',
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

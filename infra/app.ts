/**
 * CDK app entry (cdk.json: `npx tsx infra/app.ts`). Environment-agnostic: synthesizes offline,
 * with no credentials; the account and region come from the deployment.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';
import { loadConfig } from './config.ts';
import { RekeyStack } from './rekey-stack.ts';

const app = new App();
new RekeyStack(app, 'RekeyStack', {
  config: loadConfig(app.node),
  description: 'rekey: safe, automatic rotation of IAM user access keys',
});
// Both packs, every finding either fixed or acknowledged next to the code it excuses
// (test/infra/nag.test.ts runs them on every test run).
Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));

/**
 * CDK app entry (cdk.json: `npx tsx infra/app.ts`). Environment-agnostic: synthesizes offline,
 * with no credentials; the account and region come from the deployment.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';
import { loadConfig } from './config.ts';
import { MEMBER_STACK_ID, RekeyMemberStack } from './member-stack.ts';
import { RekeyStack } from './rekey-stack.ts';

const app = new App();
const config = loadConfig(app.node);
new RekeyStack(app, 'RekeyStack', {
  config,
  description: 'rekey: safe, automatic rotation of IAM user access keys',
});
// With `organization`, the member stack on its own too (cdk.out/RekeyMemberStack.template.json):
// the template the hub's StackSet deploys, for local runs and review. Deployed by the StackSet,
// never by `cdk deploy` (docs/organizations.md).
if (config.organization) new RekeyMemberStack(app, MEMBER_STACK_ID, { config });
// Both packs, every finding either fixed or acknowledged next to the code it excuses
// (test/infra/nag.test.ts runs them on every test run).
Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));

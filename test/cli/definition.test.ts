import { describe, expect, it } from 'vitest';
import {
  type CfnTemplate,
  DefinitionError,
  extractDefinition,
  loadDefinition,
} from '../../cli/definition.ts';
import { FIXTURE_TEMPLATE_PATH, fixtureTemplate } from '../support/fixtures/index.ts';

/** The Fn::Join parts of the fixture's DefinitionString, for tests that edit the definition. */
function definitionParts(template: CfnTemplate): unknown[] {
  const definitionString = template.Resources?.RotationStateMachine5E6F7A8B?.Properties?.DefinitionString;
  return (definitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
}

function replaceGetAtt(template: CfnTemplate, logicalId: string, replacement: unknown): void {
  const parts = definitionParts(template);
  const index = parts.findIndex(
    (part) => JSON.stringify(part) === JSON.stringify({ 'Fn::GetAtt': [logicalId, 'Arn'] }),
  );
  expect(index).toBeGreaterThanOrEqual(0);
  parts[index] = replacement;
}

describe('loadDefinition', () => {
  it('binds every Task, nested ones included, to the handler named by its function metadata', () => {
    // Act
    const { bindings } = loadDefinition({ templatePath: FIXTURE_TEMPLATE_PATH, synth: false });

    // Assess
    expect(bindings).toEqual({
      'Plan the rotation': 'plan',
      'Create the second key': 'create-second-key',
      "Check the old key's last use": 'check-last-used',
      'Delete the extra key': 'delete-key',
      'Notify that the rotation completed': 'notify',
      'Notify that the rotation stopped': 'notify',
      'Notify the failure': 'notify',
    });
  });

  it('replaces Lambda ARN tokens with placeholder ARNs and other tokens with placeholder strings', () => {
    // Act
    const { definition } = loadDefinition({ templatePath: FIXTURE_TEMPLATE_PATH, synth: false });

    // Assess
    expect(definition.States['Plan the rotation']).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:lambda:us-east-1:123456789012:function:plan',
    });
    expect(definition.States['Report the dry run']).toMatchObject({
      Result: { topic: 'local-resource-NotificationsTopicABCD1234', partition: 'aws' },
    });
  });

  it('refuses a missing template instead of synthesizing when told not to synth', () => {
    expect(() =>
      loadDefinition({ templatePath: '/nonexistent/RekeyStack.template.json', synth: false }),
    ).toThrow(/template not found: \/nonexistent/);
  });
});

describe('extractDefinition guard', () => {
  it('throws when a Task calls a function without rekey:handler metadata', () => {
    // Prepare
    const template = fixtureTemplate();
    const notify = template.Resources?.NotifyFunction7E8F9A0B;
    if (notify?.Metadata) delete notify.Metadata['rekey:handler'];

    // Act / Assess
    expect(() => extractDefinition(template)).toThrow(DefinitionError);
    expect(() => extractDefinition(template)).toThrow(
      /Task "Notify that the rotation completed" has no local binding: its function NotifyFunction7E8F9A0B/,
    );
  });

  it('throws when a nested Task has a Resource that is not a Lambda function', () => {
    // Prepare
    const template = fixtureTemplate();
    replaceGetAtt(template, 'DeleteKeyFunction3A4B5C6D', 'arn:aws:states:::sns:publish');

    // Act / Assess
    expect(() => extractDefinition(template)).toThrow(
      /Task "Delete the extra key" has Resource "arn:aws:states:::sns:publish": the local runner runs only Lambda/,
    );
  });

  it('throws when a Task calls a Lambda function that is not in the template', () => {
    // Prepare
    const template = fixtureTemplate();
    replaceGetAtt(
      template,
      'PlanFunction1A2B3C4D',
      'arn:aws:lambda:eu-west-1:999999999999:function:somebody-else',
    );

    // Act / Assess
    expect(() => extractDefinition(template)).toThrow(/Task "Plan the rotation" has no local binding/);
  });

  it('throws for metadata naming a step that does not exist', () => {
    // Prepare
    const template = fixtureTemplate();
    const plan = template.Resources?.PlanFunction1A2B3C4D;
    if (plan?.Metadata) plan.Metadata['rekey:handler'] = 'planner';

    // Act / Assess
    expect(() => extractDefinition(template)).toThrow(
      /PlanFunction1A2B3C4D has rekey:handler "planner", which is not a step/,
    );
  });

  it("throws with asl-validator's messages for an invalid definition", () => {
    // Prepare
    const template = fixtureTemplate();
    const parts = definitionParts(template);
    const index = parts.findIndex(
      (part) => typeof part === 'string' && part.includes('"Next":"Is there a key'),
    );
    parts[index] = String(parts[index]).replace('"Next":"Is there a key to rotate?"', '"Next":"Nowhere"');

    // Act / Assess
    expect(() => extractDefinition(template)).toThrow(
      /definition is invalid:\n[\s\S]*MISSING_TRANSITION_TARGET: .*target: Nowhere/,
    );
  });

  it('throws unless the template has exactly one state machine', () => {
    // Prepare
    const none = fixtureTemplate();
    if (none.Resources) delete none.Resources.RotationStateMachine5E6F7A8B;

    // Act / Assess
    expect(() => extractDefinition(none)).toThrow(/exactly one AWS::StepFunctions::StateMachine .* found 0/);
  });
});

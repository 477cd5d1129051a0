/**
 * The rotation state machine's names that infra, the CLI and the tests share: its states (they
 * read as sentences in the console), the errors its Fail states end with, and the transient
 * errors every Task retries. The state machine itself is built in
 * infra/constructs/rotation-state-machine.ts.
 */

/**
 * Errors worth another attempt: the Lambda service's own transient failures, a function that ran
 * out of time, and the throttling / 5xx / connection-reset names AWS SDK v3 errors carry when a
 * step rethrows them. Every step is idempotent, so re-running one is safe.
 *
 * A function timeout reaches the state machine as `Sandbox.Timedout` (the error type the Lambda
 * runtime reports for "Task timed out after N seconds") or, as the Step Functions guide words
 * it, `Lambda.Unknown` (unhandled errors, function timeouts and out-of-memory among them). Either
 * way the invocation is over when the error arrives, so the retry never runs beside it; whatever
 * it did before it was stopped (a key created but not stored, a label half moved) is what a re-run
 * of the step already finds and finishes or removes, as after any crash. A step's timeout exceeds
 * its worst path (infra/config.ts stepTimeoutSeconds): it only fires on a hung runtime.
 * `States.Timeout` is not retried: it would come from a Task's TimeoutSeconds, which no Task sets,
 * because Step Functions then gives up on an invocation that may still be running, and a retry
 * would run the step twice at once.
 */
export const TRANSIENT_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.Unknown',
  'Sandbox.Timedout',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'ServiceFailure',
  'ServiceFailureException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalServiceError',
  'InternalServerError',
  'InternalErrorException',
  'InternalException',
  'ThrottledException',
  'TimeoutError',
  'ECONNRESET',
] as const;

/** State names: they read as sentences in the console, and tests and the runner use them. */
export const STATE = {
  plan: 'Plan the rotation',
  reject: 'Reject the request',
  followPlan: 'What does the plan say?',
  reportDryRun: 'Report the dry-run plan',
  doesStopNeedAlert: 'Does the stop need an alert?',
  reportStopped: 'Report that the rotation stopped',
  recordSafeStop: 'Record the safe stop',
  stoppedSafely: 'Stopped safely',
  removeExtraKey: 'Remove the unused extra key',
  createSecondKey: 'Create the second key',
  verifyNewKey: 'Verify the new key works',
  reportNewKeyReady: 'Tell consumers the new key is ready',
  waitForAdoption: 'Wait for consumers to adopt the new key',
  checkLastUsed: 'Check whether the old key is still used',
  isOldKeyInUse: 'Is the old key still in use?',
  moveQuietSince: 'Count only uses from this check on',
  warnStillInUse: 'Warn that the old key is still in use',
  deactivateOldKey: 'Deactivate the old key',
  reportDeactivated: 'Report that the old key was deactivated',
  waitBeforeDelete: 'Wait before deleting the old key',
  verifyRotation: 'Verify the old key stayed unused, then delete it',
  reportComplete: 'Report that the rotation is complete',
  rotationComplete: 'Rotation complete',
  reactivateOldKey: 'Reactivate the old key',
  reportRollback: 'Report the rollback',
  rolledBack: 'Rotation rolled back',
  cleanUpAfterFailure: 'Clean up after the failure',
  reportFailure: 'Report the failure',
  rotationFailed: 'Rotation failed',
} as const;
export type StateName = (typeof STATE)[keyof typeof STATE];

/** Fail-state error names, for callers that tell outcomes apart. */
export const FAIL_ERRORS = {
  rejected: 'RotationRequestRejected',
  rolledBack: 'RotationRolledBack',
  failed: 'RotationFailed',
} as const;

/**
 * The organization audit's states (infra/constructs/organization-audit.ts): one listing of the
 * accounts in scope, one audit per account in an inline Map, one digest over all of them.
 */
export const ORGANIZATION_AUDIT_STATE = {
  takeNamedAccounts: 'Take the named accounts',
  takeEveryAccount: 'Take every account in scope',
  areAccountsNamed: 'Are accounts named?',
  applyDefaults: 'Apply the defaults',
  listAccounts: 'List the accounts in scope',
  isAnyAccountListed: 'Is any account listed?',
  nothingToAudit: 'Nothing to audit',
  auditEachAccount: 'Audit each account',
  auditOneAccount: 'Audit one account',
  leaveFailureToDigest: 'Leave the failure to the digest',
  sendDigest: 'Send one digest',
} as const;
export type OrganizationAuditStateName =
  (typeof ORGANIZATION_AUDIT_STATE)[keyof typeof ORGANIZATION_AUDIT_STATE];

/**
 * Metadata key on the organization audit's AWS::StepFunctions::StateMachine (value
 * `organization-audit`): with organization the hub template holds two state machines, and the
 * local runner (cli/definition.ts) tells them apart by it. The rotation's carries none, so that a
 * template without organization stays as it was.
 */
export const STATE_MACHINE_METADATA_KEY = 'rekey:state-machine';
export const ORGANIZATION_AUDIT_MACHINE = 'organization-audit';

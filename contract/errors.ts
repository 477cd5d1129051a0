/**
 * Named errors. Step Functions matches `Retry`/`Catch` on the Lambda error type, which is the
 * error's `name`, so every class sets it explicitly (minifiers rename classes).
 *
 * Messages name the problem (user, key id, field) but never a secret value.
 */
export class RekeyError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** The execution input (or CLI input) is not a valid rotation request. Nothing was called. */
export class InvalidInput extends RekeyError {
  constructor(message: string) {
    super('InvalidInput', message);
  }
}

/** The IAM user does not exist (or is not visible to rekey). */
export class UserNotFound extends RekeyError {
  constructor(userName: string) {
    super('UserNotFound', `IAM user "${userName}" does not exist`);
  }
}

/** A Lambda's environment does not satisfy its contract (a deployment defect). */
export class ConfigurationError extends RekeyError {
  constructor(message: string) {
    super('ConfigurationError', message);
  }
}

/** The new key could not be stored; the key was deleted again (compensation). */
export class SecretNotStored extends RekeyError {
  constructor(userName: string, cause: string, noun = 'access key') {
    super(
      'SecretNotStored',
      `the new ${noun} of "${userName}" could not be stored and was deleted: ${cause}`,
    );
  }
}

/** A key appeared that rekey did not create and cannot account for; nothing was changed. */
export class UnexpectedKeyState extends RekeyError {
  constructor(message: string) {
    super('UnexpectedKeyState', message);
  }
}

/** The new key did not authenticate as its user after every retry; it was discarded. */
export class NewKeyNotWorking extends RekeyError {
  constructor(message: string) {
    super('NewKeyNotWorking', message);
  }
}

/**
 * After deactivation the old key was reactivated or used, or the new key stopped working.
 * The workflow rolls back (reactivates the old key) on this error.
 */
export class RotationVerificationFailed extends RekeyError {
  constructor(message: string) {
    super('RotationVerificationFailed', message);
  }
}

/** The delete step re-checked the old key and found it active or used since it had to be quiet. */
export class UnsafeToDelete extends RekeyError {
  constructor(message: string) {
    super('UnsafeToDelete', message);
  }
}

/**
 * What to do after an "old key still in use" stop, in the words of the notification and the
 * deactivate re-check: the rotation resumes with the key already handed out (no new key).
 */
export const STILL_IN_USE_ADVICE =
  "Switch every consumer that still uses the old key to the secret's AWSCURRENT version (the new key), " +
  'then start the rotation of this user again: it resumes with the new key, creates none, checks ' +
  'that the old key went quiet, deactivates it and later deletes it';

/**
 * The deactivate step's re-check found the old key used at or after the quiet-since instant:
 * nothing was changed. A safe stop (both keys stay active), resumable by a new rotation.
 */
export class OldKeyStillInUse extends RekeyError {
  constructor(message: string) {
    super('OldKeyStillInUse', message);
  }
}

/** The eligibility rules, re-checked right before a key change, whose stop reasons are also error names. */
export const ELIGIBILITY_STOPS = ['UserExempt', 'UserProtected', 'UserOutOfScope'] as const;

/**
 * A step's re-check found that rekey may no longer touch the user (exempt, protected, out of
 * scope): nothing was changed. Named after the stop reason, so the state machine reports it as a
 * safe stop, and a new rotation resumes once the user is back in scope.
 */
export class UserNotEligible extends RekeyError {
  constructor(reason: (typeof ELIGIBILITY_STOPS)[number], message: string) {
    super(reason, message);
  }
}

/** Errors of a working step that stop the rotation safely (nothing unsafe done, resumable): reported as stops. */
export const SAFE_STOP_ERRORS = [...ELIGIBILITY_STOPS, 'OldKeyStillInUse'] as const;

/** Another execution holds this user's rotation lock (raised where the lock is re-checked). */
export class RotationInProgress extends RekeyError {
  constructor(userName: string, owner: string) {
    super('RotationInProgress', `another rotation of "${userName}" is in progress (${owner})`);
  }
}

/**
 * A Lambda cannot act in a member account: its member role there is missing, or refuses to be
 * assumed by the Lambda's own role (docs/organizations.md). Raised before any call into the
 * account, so nothing there was changed; not retried, since it lasts until the role is deployed.
 */
export class MemberRoleUnavailable extends RekeyError {
  constructor(accountId: string, roleArn: string, cause: string) {
    super(
      'MemberRoleUnavailable',
      `cannot act in account ${accountId}: its member role ${roleArn} is missing or cannot be assumed (${cause}); deploy the member stack there (the StackSet) and start again`,
    );
  }
}

/**
 * The plan refused the account a request names (docs/organizations.md): the organization option
 * is off, or the account is not an active member of the organization, or it is outside the
 * configured scope. Raised before any call into that account; nothing was changed, nothing locked.
 */
export class AccountRefused extends RekeyError {
  constructor(accountId: string, reason: string) {
    super('AccountRefused', `rekey does not act in account ${accountId}: ${reason}`);
  }
}

/**
 * The organization audit was asked for accounts (`accounts` in its input) that are not in the
 * organization, are suspended or are out of the configured scope. Raised before any audit.
 */
export class AccountsNotInScope extends RekeyError {
  constructor(skipped: readonly { accountId: string; reason: string }[]) {
    super(
      'AccountsNotInScope',
      `not audited, out of scope: ${skipped.map((s) => `${s.accountId} (${s.reason})`).join('; ')}`,
    );
  }
}

/**
 * The organization audit's digest went out, but some accounts failed or left no result: raised
 * after the digest, so the execution fails and names them.
 */
export class OrganizationAuditIncomplete extends RekeyError {
  constructor(failed: readonly string[], missing: readonly string[]) {
    const parts = [
      ...(failed.length > 0 ? [`failed: ${failed.join(', ')}`] : []),
      ...(missing.length > 0 ? [`no result: ${missing.join(', ')}`] : []),
    ];
    super('OrganizationAuditIncomplete', `the organization audit is incomplete (${parts.join('; ')})`);
  }
}

/** Errors that mean "the request was refused before anything happened": no notification is sent. */
export const REJECTION_ERRORS = ['InvalidInput', 'UserNotFound', 'AccountRefused'] as const;

/** Errors after which the workflow must reactivate the old key. */
export const ROLLBACK_ERRORS = ['RotationVerificationFailed', 'UnsafeToDelete'] as const;

/** The AWS error's name, for errors that are not RekeyErrors (SDK ServiceExceptions carry `name`). */
export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}

/** AWS's access denials name the principal, the action and the resource, never request data. */
const ACCESS_DENIALS = ['AccessDenied', 'AccessDeniedException'];

/**
 * An error as a message that must not echo the request may tell it: its name, and for an access
 * denial also its message, which says what permission is missing (what an operator needs first).
 */
export function safeCause(error: unknown): string {
  const name = errorName(error);
  return error instanceof Error && ACCESS_DENIALS.includes(name) ? `${name}: ${error.message}` : name;
}

export function isAwsError(error: unknown, ...names: string[]): boolean {
  return error instanceof Error && names.includes(error.name);
}

/** A step received a payload that does not match its schema: a workflow defect, not user input. */
export class InvalidPayload extends RekeyError {
  constructor(message: string) {
    super('InvalidPayload', message);
  }
}

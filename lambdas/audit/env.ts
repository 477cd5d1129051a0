/**
 * The environment the audit Lambda reads: the stack sets exactly these variables on it, and the
 * handler validates them at cold start. A separate module so infra can import the list without
 * loading the handler (which validates the environment at import).
 */
import type { RekeyEnvKey } from '../shared/env.ts';

/** The audit's thresholds and policies: all that decides what it finds and does (the demo uses these). */
export const AUDIT_POLICY_ENV = [
  'REKEY_MAX_KEY_AGE_DAYS',
  'REKEY_UNUSED_DAYS',
  'REKEY_WARN_DAYS',
  'REKEY_AUTO_ROTATE',
  'REKEY_MAX_ROTATIONS_PER_RUN',
  'REKEY_MAX_ROTATION_ATTEMPTS',
  'REKEY_DEACTIVATE_UNUSED',
  'REKEY_DEACTIVATE_UNUSED_AFTER_DAYS',
  'REKEY_SECURITY_HUB',
  'REKEY_AUDIT_SERVICE_CREDENTIALS',
  'REKEY_EXEMPT_TAG',
  'REKEY_PROTECTED_USERS',
  'REKEY_USER_PATH_PREFIX',
  'REKEY_OPT_IN_TAG',
] as const satisfies readonly RekeyEnvKey[];

/** The policy plus the deployed resources it acts through. */
export const AUDIT_ENV = [
  ...AUDIT_POLICY_ENV,
  'REKEY_STATE_MACHINE_ARN',
  'REKEY_TOPIC_ARN',
  'REKEY_EVENT_BUS_NAME',
] as const satisfies readonly RekeyEnvKey[];

export type AuditEnvKey = (typeof AUDIT_ENV)[number];

/**
 * A user's owner, from its owner tag (ownerTag, default `rekey:owner`): an email address, or a
 * team id of 1 to 64 characters from [A-Za-z0-9._:/-]. Findings, notifications and events carry
 * it as `owner`, SNS messages as the message attribute `owner`, so that a subscription filter
 * policy or an EventBridge rule routes an owner's alerts to that owner only.
 *
 * A tag in neither form names no owner: it becomes a note on the user's findings (and a warning
 * in the plan's log), never an error, so a typo in a tag never stops an audit or a rotation.
 */
import * as z from 'zod/mini';

/** The owner tag when none is configured (infra/config.ts ownerTag). */
export const DEFAULT_OWNER_TAG = 'rekey:owner';

/** The attribute value of the audit's full digest, which holds every owner's findings. */
export const ALL_OWNERS = '*';

const TEAM_ID = /^[A-Za-z0-9._:/-]{1,64}$/;
const Email = z.email();

export type OwnerTag =
  | { owner: string; note?: undefined }
  | { owner?: undefined; note: string }
  | { owner?: undefined; note?: undefined };

/** What the tag's value says: an owner, a note on a value in neither form, or nothing (no tag). */
export function ownerFromTag(tagName: string, value: string | undefined): OwnerTag {
  if (value === undefined) return {};
  const trimmed = value.trim();
  if (TEAM_ID.test(trimmed) || (trimmed.length <= 254 && z.safeParse(Email, trimmed).success))
    return { owner: trimmed };
  return {
    note:
      `the ${tagName} tag (${JSON.stringify(value.slice(0, 80))}) is neither an email address nor a team id ` +
      '(1 to 64 characters of letters, digits and ._:/-): no owner is notified',
  };
}

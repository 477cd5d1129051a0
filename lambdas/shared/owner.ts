/**
 * The owner of a user the rotation is about, from its owner tag (contract/owner.ts), for the
 * state document: every notification and event of the rotation then carries it. A tag in neither
 * form is logged as a warning and names no owner; the rotation goes on.
 */
import { ownerFromTag } from '../../contract/owner.ts';
import { logger } from './logger.ts';

export function ownerOfUser(
  userName: string,
  tags: ReadonlyMap<string, string>,
  ownerTag: string,
): { owner: string } | Record<string, never> {
  const { owner, note } = ownerFromTag(ownerTag, tags.get(ownerTag));
  if (note) logger.warn('the owner tag names no owner', { userName, note });
  return owner ? { owner } : {};
}

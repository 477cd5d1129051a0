import { ReactivateInput } from '../../../contract/schemas.ts';
import { iam } from '../../shared/clients/iam.ts';
import { makeHandler } from '../../shared/handler.ts';
import { reactivateOldKey } from './reactivate-old-key.ts';

export const handler = makeHandler(ReactivateInput, (state) => reactivateOldKey({ iam }, state), {
  member: 'reactivate-old-key',
});

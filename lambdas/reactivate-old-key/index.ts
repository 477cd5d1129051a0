import { iam } from '../shared/clients/iam.ts';
import { reactivateOldKey } from '../shared/domain/lifecycle.ts';
import { makeHandler } from '../shared/handler.ts';
import { ReactivateInput } from '../shared/schemas.ts';

export const handler = makeHandler(ReactivateInput, (state) => reactivateOldKey({ iam }, state));

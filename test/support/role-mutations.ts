/**
 * Changes to a Lambda's role for the mutation tests (cli/deployed-roles.ts `mutate`): a role
 * missing an action, or scoped away from the call's target, must make a run fail.
 */
import type { RoleStatement } from '../../cli/deployed-roles.ts';

export type Mutate = (lambda: string, statements: RoleStatement[]) => RoleStatement[];

/** `lambda`'s role without `action` in any Allow statement (a statement left with none goes). */
export const withoutAction =
  (lambda: string, action: string): Mutate =>
  (name, statements) =>
    name !== lambda
      ? statements
      : statements
          .map((s) => (s.effect === 'Allow' ? { ...s, actions: s.actions.filter((a) => a !== action) } : s))
          .filter((s) => s.actions.length > 0);

/** `lambda`'s role with every IAM user resource moved under another path of the account. */
export const usersUnder =
  (lambda: string, account: string, path: string): Mutate =>
  (name, statements) =>
    name !== lambda
      ? statements
      : statements.map((s) => ({
          ...s,
          resources: s.resources.map((r) =>
            r?.includes(':user/') ? `arn:aws:iam::${account}:user${path}*` : r,
          ),
        }));

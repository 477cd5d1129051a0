/**
 * Counts the IAM API calls an audit makes, by operation. The audit's promise is that scanning
 * costs O(1) calls whatever the number of users (one credential report, one pass over the
 * authorization details); the count proves it in tests and is printed by the CLI and logged by
 * the Lambda. The domain code counts each request it sends (a paginator page is one request),
 * so the count also works where tests replace `send` with a mock.
 */

/**
 * Operations that cost one call per user with a finding (key id lookup) or per action taken (the
 * opt-in deactivation re-checks last use, then deactivates), not per user scanned.
 */
export const PER_FINDING_OPERATIONS = ['ListAccessKeys', 'GetAccessKeyLastUsed', 'UpdateAccessKey'] as const;

export class CallCounter {
  readonly #counts = new Map<string, number>();

  add(operation: string): void {
    this.#counts.set(operation, (this.#counts.get(operation) ?? 0) + 1);
  }

  count(operation: string): number {
    return this.#counts.get(operation) ?? 0;
  }

  get total(): number {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }

  /** Calls that do not depend on the number of users: everything but the per-finding ones. */
  get scanCalls(): number {
    return this.total - this.perFindingCalls;
  }

  get perFindingCalls(): number {
    return PER_FINDING_OPERATIONS.reduce((sum, op) => sum + this.count(op), 0);
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.#counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}

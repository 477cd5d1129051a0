/**
 * One digest per owner (contract/owner.ts): the run's report narrowed to the findings of the users
 * one owner owns, and to those users' actions and cleared findings, so that nothing of another
 * owner's reaches a subscription filtered on that owner.
 */
import type { AuditReport } from './alerts.ts';

export function ownerReports(report: AuditReport): AuditReport[] {
  const owners = [...new Set(report.findings.flatMap((f) => (f.owner ? [f.owner] : [])))].sort();
  return owners.map((owner) => {
    const findings = report.findings.filter((f) => f.owner === owner);
    // In an organization digest, a user is a user of one account: another account's namesake is not this owner's.
    const userOf = (x: { accountId?: string | undefined; userName: string }) =>
      `${x.accountId ?? ''}/${x.userName}`;
    const users = new Set(findings.map(userOf));
    return {
      ...report,
      owner,
      findings,
      stale: report.stale.filter((s) => s.finding.owner === owner),
      actions: report.actions.filter((a) => users.has(userOf(a))),
    };
  });
}

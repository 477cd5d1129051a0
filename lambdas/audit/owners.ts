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
    const users = new Set(findings.map((f) => f.userName));
    return {
      ...report,
      owner,
      findings,
      stale: report.stale.filter((s) => s.finding.owner === owner),
      actions: report.actions.filter((a) => users.has(a.userName)),
    };
  });
}

/**
 * The audit Lambda's report upload (opt-in, auditReports): each run's HTML and CSV report written
 * to the stack's report bucket, under AUDIT_REPORT_PREFIX, one pair of objects per run:
 *
 *   audit-reports/<account>/<YYYY-MM-DD>/<audited at, ISO 8601 basic>.html and .csv
 *
 * A key sorts by account, then by time; a second run of the same second (a retried invocation)
 * writes the same keys again.
 *
 * The digest links to each object twice: its S3 console page (a link an email reader can click; it
 * opens only after the reader's own AWS sign-in, and only with s3:GetObject on the object), and
 * its s3:// URI (for `aws s3 cp`). Never a presigned URL: that would carry the audit role's
 * temporary credentials (their key id and a signature) into every inbox, and stop working when
 * that session ends.
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { AUDIT_REPORT_PREFIX } from '../../../contract/functions.ts';
import type { AccountContext } from '../security-hub.ts';
import type { ReportInput } from './columns.ts';
import { renderCsv } from './csv.ts';
import { renderHtml } from './html.ts';

export interface ReportLink {
  /** `s3://<bucket>/<key>` */
  uri: string;
  /** The object's page in the S3 console; null in a partition without a known console address. */
  consoleUrl: string | null;
}

export interface ReportLinks {
  html: ReportLink;
  csv: ReportLink;
}

export interface ReportUploadDeps {
  s3: Pick<S3Client, 'send'>;
  bucket: string;
  account: AccountContext;
}

/** The S3 console's host in each partition. */
const CONSOLE_HOSTS: Record<string, (region: string) => string> = {
  aws: (region) => `${region}.console.aws.amazon.com`,
  'aws-us-gov': () => 'console.amazonaws-us-gov.com',
  'aws-cn': () => 'console.amazonaws.cn',
};

export function reportLink(bucket: string, key: string, account: AccountContext): ReportLink {
  const host = CONSOLE_HOSTS[account.partition]?.(account.region);
  return {
    uri: `s3://${bucket}/${key}`,
    consoleUrl: host
      ? `https://${host}/s3/object/${bucket}?region=${account.region}&bucketType=general&prefix=${encodeURIComponent(key)}`
      : null,
  };
}

/** `audit-reports/<account>/<YYYY-MM-DD>/<YYYYMMDDTHHMMSSZ>`, without the extension. */
export function reportKeyBase(accountId: string, auditedAt: Date): string {
  const iso = auditedAt.toISOString();
  const basic = iso.replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${AUDIT_REPORT_PREFIX}${accountId}/${iso.slice(0, 10)}/${basic}`;
}

/** Writes both files and returns their links. */
export async function uploadReports(deps: ReportUploadDeps, input: ReportInput): Promise<ReportLinks> {
  const base = reportKeyBase(deps.account.accountId, input.auditedAt);
  const put = async (extension: string, body: string, contentType: string) => {
    const key = `${base}.${extension}`;
    await deps.s3.send(
      new PutObjectCommand({ Bucket: deps.bucket, Key: key, Body: body, ContentType: contentType }),
    );
    return reportLink(deps.bucket, key, deps.account);
  };
  return {
    html: await put('html', renderHtml(input), 'text/html; charset=utf-8'),
    csv: await put('csv', renderCsv(input), 'text/csv; charset=utf-8'),
  };
}

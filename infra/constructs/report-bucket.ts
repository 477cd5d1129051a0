import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { AUDIT_REPORT_PREFIX } from '../../contract/functions.ts';

export interface ReportBucketProps {
  /**
   * Days after which a report is deleted (the lifecycle rule).
   * @default - required (auditReportsRetentionDays)
   */
  readonly retentionDays: number;
}

/**
 * The bucket of audit reports (auditReports): each audit run's HTML and CSV report under
 * AUDIT_REPORT_PREFIX. Private (every public access blocked, ACLs disabled), TLS only, encrypted
 * at rest, and each report deleted after the retention period. Kept when the stack is deleted:
 * the reports are audit evidence, like the functions' logs.
 */
export class ReportBucket extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ReportBucketProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          id: 'expire-audit-reports',
          prefix: AUDIT_REPORT_PREFIX,
          expiration: Duration.days(props.retentionDays),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
    });
    const acknowledge = (ids: string[], reason: string) => {
      for (const id of ids) Validations.of(this.bucket).acknowledge({ id, reason });
    };
    acknowledge(
      ['AwsSolutions-S1', 'NIST.800.53.R5-S3BucketLoggingEnabled'],
      'only the audit role writes here (s3:PutObject on the report prefix) and the reports hold no secret; server access logs would need a second bucket, itself unlogged. Who read a report is recorded by CloudTrail data events, where the account enables them for S3',
    );
    acknowledge(
      ['NIST.800.53.R5-S3BucketReplicationEnabled', 'NIST.800.53.R5-S3BucketVersioningEnabled'],
      'every run writes new objects (keys by account and time) and the next run writes a full report again: there is nothing to restore a version of, and a replica would be a copy of files that are remade daily',
    );
    acknowledge(
      ['NIST.800.53.R5-S3DefaultEncryptionKMS'],
      'the reports carry user names, key ids and dates, never a secret (the secrets have their own customer-managed key); SSE-S3 encrypts them at rest and lets a reader with s3:GetObject open them without a KMS grant',
    );
  }
}

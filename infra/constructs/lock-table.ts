import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { LOCK_TTL_ATTRIBUTE } from '../../contract/tables.ts';

/**
 * One item per IAM user being rotated: at most one rotation per user at any time. A lock that
 * was never released (an execution that died) expires with the state machine's timeout.
 */
export class LockTable extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'userName', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: LOCK_TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Locks mean something only while the state machine that owns them exists.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.table).acknowledge({
      id: 'NIST.800.53.R5-DynamoDBInBackupPlan',
      reason:
        'the table holds only transient per-user locks that expire with the state machine timeout; a restored backup would resurrect stale locks, and point-in-time recovery already covers a mistaken write or deletion',
    });
  }
}

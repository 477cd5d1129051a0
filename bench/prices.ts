/**
 * AWS list prices for the cost of one rotation: US East (N. Virginia), on-demand, before free tiers
 * and discounts, as published on the pages below when they were last read (PRICES_READ). Prices
 * change: check the pages before quoting a figure as current. One table, read by (b) only.
 */
import { listPrice } from './report.ts';

export const PRICES_READ = '2026-11-22';
export const PRICES_REGION = 'us-east-1';

export interface Price {
  /** Dollars per `per` units. */
  usd: number;
  per: number;
  unit: string;
  source: string;
}

export const PRICES = {
  /** Standard workflows: every state entered is a transition, retries included. */
  stepFunctionsTransition: {
    usd: 0.025,
    per: 1000,
    unit: 'state transitions',
    source: 'https://aws.amazon.com/step-functions/pricing/',
  },
  lambdaRequest: {
    usd: 0.2,
    per: 1_000_000,
    unit: 'requests',
    source: 'https://aws.amazon.com/lambda/pricing/',
  },
  /** Arm (Graviton), first 7.5 billion GB-s a month. */
  lambdaArmGbSecond: {
    usd: 0.0000133334,
    per: 1,
    unit: 'GB-second (arm64)',
    source: 'https://aws.amazon.com/lambda/pricing/',
  },
  secretsManagerApiCall: {
    usd: 0.05,
    per: 10_000,
    unit: 'API calls',
    source: 'https://aws.amazon.com/secrets-manager/pricing/',
  },
  /** Pro-rated by the hour for secrets stored less than a month. */
  secretMonth: {
    usd: 0.4,
    per: 1,
    unit: 'secret-month',
    source: 'https://aws.amazon.com/secrets-manager/pricing/',
  },
  /** Symmetric key requests (Secrets Manager and SNS call KMS with rekey's customer-managed keys). */
  kmsRequest: {
    usd: 0.03,
    per: 10_000,
    unit: 'requests',
    source: 'https://aws.amazon.com/kms/pricing/',
  },
  /** A customer-managed key, whatever it encrypts (pro-rated by the hour). */
  kmsKeyMonth: {
    usd: 1.0,
    per: 1,
    unit: 'key-month',
    source: 'https://aws.amazon.com/kms/pricing/',
  },
  /** Standard topics: each 64 KB chunk of a publish is a request; deliveries are billed apart. */
  snsPublish: {
    usd: 0.5,
    per: 1_000_000,
    unit: 'publish requests',
    source: 'https://aws.amazon.com/sns/pricing/',
  },
  /** Custom events on the default bus: each 64 KB chunk of a PutEvents entry is an event. */
  eventBridgeCustomEvent: {
    usd: 1.0,
    per: 1_000_000,
    unit: 'custom events',
    source: 'https://aws.amazon.com/eventbridge/pricing/',
  },
  /** On-demand capacity (the November 2024 price): a write of an item up to 1 KB is one unit. */
  dynamoDbWriteUnit: {
    usd: 0.625,
    per: 1_000_000,
    unit: 'write request units',
    source: 'https://aws.amazon.com/dynamodb/pricing/on-demand/',
  },
  /** A strongly consistent read of up to 4 KB is one unit (eventually consistent: half). */
  dynamoDbReadUnit: {
    usd: 0.125,
    per: 1_000_000,
    unit: 'read request units',
    source: 'https://aws.amazon.com/dynamodb/pricing/on-demand/',
  },
} as const satisfies Record<string, Price>;

/** What `quantity` units cost at `price`. */
export const costOf = (price: Price, quantity: number): number => (price.usd / price.per) * quantity;

/** "$0.025 per 1,000 state transitions" */
export const priceText = (price: Price): string =>
  `${listPrice(price.usd)} per ${price.per === 1 ? '' : `${price.per.toLocaleString('en-US')} `}${price.unit}`;

/** The average month (365 / 12 days) Secrets Manager pro-rates storage by. */
export const DAYS_PER_MONTH = 365 / 12;

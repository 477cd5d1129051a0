import 'vitest';
import type { CustomMatcher } from 'aws-sdk-client-mock-vitest';

declare module 'vitest' {
  // biome-ignore lint/suspicious/noExplicitAny: the matcher interface is generic over any
  interface Matchers<R = any, T = any> extends CustomMatcher<R, T> {}
}

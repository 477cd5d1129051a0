/**
 * Reads CloudWatch embedded metric format (EMF) lines out of captured output, the way CloudWatch
 * Logs does: every JSON line with `_aws.CloudWatchMetrics` yields one data point per metric and
 * dimension set, its dimensions' values and its value read from the line's top-level keys.
 */
export interface MetricPoint {
  namespace: string;
  name: string;
  unit: string | undefined;
  dimensions: Record<string, string>;
  value: unknown;
}

interface EmfLine {
  _aws: {
    CloudWatchMetrics: Array<{
      Namespace: string;
      Dimensions: string[][];
      Metrics: Array<{ Name: string; Unit?: string }>;
    }>;
  };
  [key: string]: unknown;
}

const isEmf = (value: unknown): value is EmfLine =>
  typeof value === 'object' &&
  value !== null &&
  Array.isArray((value as Partial<EmfLine>)._aws?.CloudWatchMetrics);

/** The EMF lines of the chunks (written in any pieces; split on newlines). */
export function emfLines(chunks: readonly string[]): EmfLine[] {
  return chunks
    .join('')
    .split('\n')
    .flatMap((line) => {
      if (!line.trimStart().startsWith('{')) return [];
      try {
        const parsed: unknown = JSON.parse(line);
        return isEmf(parsed) ? [parsed] : [];
      } catch {
        return [];
      }
    });
}

/** Every data point the lines make, in order. */
export function metricPoints(chunks: readonly string[]): MetricPoint[] {
  return emfLines(chunks).flatMap((line) =>
    line._aws.CloudWatchMetrics.flatMap((directive) =>
      directive.Dimensions.flatMap((set) =>
        directive.Metrics.map((metric) => ({
          namespace: directive.Namespace,
          name: metric.Name,
          unit: metric.Unit,
          dimensions: Object.fromEntries(set.map((d) => [d, String(line[d])])),
          value: line[metric.Name],
        })),
      ),
    ),
  );
}

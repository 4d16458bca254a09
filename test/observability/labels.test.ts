/** Label values clients choose cannot grow the metrics without bound. */
import { describe, expect, it } from 'vitest';
import { MAX_OPERATION_NAMES, operationLabel } from '../../src/observability/metrics.js';

describe('GraphQL operation names as labels', () => {
  it('labels the first names seen as themselves, then every new one as other; unnamed ones as anonymous', () => {
    const names = Array.from({ length: MAX_OPERATION_NAMES + 50 }, (_, i) => `Op${i}`);
    const labels = names.map(operationLabel);
    expect(new Set(labels).size).toBeLessThanOrEqual(MAX_OPERATION_NAMES + 1);
    expect(labels[0]).toBe('Op0');
    expect(labels.at(-1)).toBe('other');
    // A name labelled once keeps its label.
    expect(operationLabel('Op0')).toBe('Op0');
    expect(operationLabel(undefined)).toBe('anonymous');
    expect(operationLabel('')).toBe('anonymous');
    expect(operationLabel('x'.repeat(101))).toBe('other');
  });
});

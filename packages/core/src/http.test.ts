import { context } from '@opentelemetry/api';
import { afterAll, describe, expect, it } from 'vitest';
import { createSextant } from './sextant.ts';

const lines: string[] = [];
const sextant = createSextant({
  serviceName: 'http-test',
  tracing: { exporter: 'memory' },
  metrics: { defaultMetrics: false },
  logs: { destination: { write: (line: string) => void lines.push(line) } },
  env: {},
});
afterAll(() => sextant.shutdown());

describe('http.exchangeOf', () => {
  it('finds the exchange from the request context, so an error recorded there reaches the span', () => {
    const exchange = sextant.http.begin({ method: 'GET', url: '/orders/1', headers: {} });
    expect(sextant.http.exchangeOf()).toBeUndefined();
    context.with(exchange.context, () => {
      const found = sextant.http.exchangeOf();
      expect(found).toBe(exchange);
      sextant.http.recordError(found!, new TypeError('bad order'));
    });
    sextant.http.end(exchange, { statusCode: 500, route: '/orders/:id' });
    const [span] = sextant.tracing.finishedSpans();
    expect(span!.name).toBe('GET /orders/:id');
    expect(span!.attributes['error.type']).toBe('TypeError');
    expect(span!.events.map((event) => event.name)).toEqual(['exception']);
  });

  it('has no exchange for requests to the endpoints', () => {
    const exchange = sextant.http.begin({ method: 'GET', url: '/metrics', headers: {} });
    expect(exchange.recorded).toBe(false);
    context.with(exchange.context, () => expect(sextant.http.exchangeOf()).toBeUndefined());
  });
});

import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
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

describe('http.begin and the active span', () => {
  const remote = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('gives each request its own trace when the server started listening inside a span', () => {
    sextant.tracing.resetFinishedSpans();
    // traced('startup', () => server.listen(...)): that context follows into every request.
    const startup = sextant.tracer.startSpan('startup');
    const [first, second, continued] = context.with(trace.setSpan(ROOT_CONTEXT, startup), () => [
      sextant.http.begin({ method: 'GET', url: '/a', headers: {} }),
      sextant.http.begin({ method: 'GET', url: '/b', headers: {} }),
      sextant.http.begin({ method: 'GET', url: '/c', headers: { traceparent: remote } }),
    ]);
    for (const exchange of [first!, second!, continued!]) sextant.http.end(exchange, { statusCode: 200 });
    startup.end();
    const spans = sextant.tracing.finishedSpans();
    const server = spans.filter((span) => span.kind === SpanKind.SERVER);
    expect(server).toHaveLength(3);
    const startupTrace = startup.spanContext().traceId;
    expect(server[0]!.parentSpanContext).toBeUndefined();
    expect(server[1]!.parentSpanContext).toBeUndefined();
    expect(server[0]!.spanContext().traceId).not.toBe(startupTrace);
    expect(server[1]!.spanContext().traceId).not.toBe(server[0]!.spanContext().traceId);
    expect(server[2]!.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(spans.find((span) => span.name === 'startup')!.attributes).toEqual({});
  });

  it('joins the server span auto-instrumentation opened for the request instead of opening a second', () => {
    sextant.tracing.resetFinishedSpans();
    const opened = sextant.tracer.startSpan('GET', { kind: SpanKind.SERVER });
    const exchange = context.with(trace.setSpan(ROOT_CONTEXT, opened), () =>
      sextant.http.begin({ method: 'GET', url: '/orders/7', headers: {} }),
    );
    sextant.http.end(exchange, { statusCode: 200, route: '/orders/:id' });
    opened.end();
    const spans = sextant.tracing.finishedSpans();
    expect(spans).toHaveLength(1);
    expect(spans[0]!.attributes['http.route']).toBe('/orders/:id');
  });
});

describe('http.begin and personal data', () => {
  it("writes the server span's path and user agent as the access log does: redacted", () => {
    sextant.tracing.resetFinishedSpans();
    const exchange = sextant.http.begin({
      method: 'GET',
      url: '/users/alice@example.com?token=abc',
      headers: { 'user-agent': 'MyApp/1.0 (bob@example.com; Bearer abcdefgh12345678)' },
    });
    sextant.http.end(exchange, { statusCode: 200, route: '/users/:email' });
    const [span] = sextant.tracing.finishedSpans();
    expect(span!.attributes['url.path']).toBe('/users/[EMAIL]');
    expect(span!.attributes['user_agent.original']).toBe('MyApp/1.0 ([EMAIL]; Bearer [REDACTED])');
  });
});

describe('http.end of a response cut short', () => {
  it('records a server error after the headers went out as an error, a client leaving as aborted', () => {
    sextant.tracing.resetFinishedSpans();
    lines.length = 0;
    const failed = sextant.http.begin({ method: 'GET', url: '/stream/1', headers: {} });
    sextant.http.recordError(failed, new RangeError('stream broke'));
    sextant.http.end(failed, { statusCode: 200, route: '/stream/:id', aborted: true });
    const left = sextant.http.begin({ method: 'GET', url: '/stream/2', headers: {} });
    sextant.http.end(left, { statusCode: 200, route: '/stream/:id', aborted: true });
    const [broken, abandoned] = sextant.tracing.finishedSpans();
    expect([broken!.status.code, broken!.attributes['error.type']]).toEqual([
      SpanStatusCode.ERROR,
      'RangeError',
    ]);
    expect([abandoned!.status.code, abandoned!.attributes['error.type']]).toEqual([
      SpanStatusCode.UNSET,
      'aborted',
    ]);
    const levels = lines
      .map((line) => JSON.parse(line) as { level: string; msg: string; url_path?: string })
      .filter((record) => record.msg === 'request completed')
      .map((record) => [record.url_path, record.level]);
    expect(levels).toEqual([
      ['/stream/1', 'error'],
      ['/stream/2', 'info'],
    ]);
  });
});

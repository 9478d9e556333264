import type { AddressInfo } from 'node:net';
import { createSextant } from '@sextant/core';
import { createService } from './service.ts';

/**
 * `pnpm demo`: starts the service in-process with an in-memory span exporter, drives a little
 * traffic through real HTTP, and prints where to look and what was recorded.
 */
const lines: string[] = [];
const sextant = createSextant({
  serviceName: 'core-service',
  serviceVersion: '0.0.0-demo',
  tracing: { exporter: 'memory' },
  logs: { destination: { write: (line: string) => void lines.push(line) } },
});
const server = createService(sextant);
await new Promise<void>((resolve) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const calls: Array<[string, string, Record<string, string>?]> = [
  ['GET', '/orders/1', { traceparent, 'x-request-id': 'demo-request-1' }],
  ['GET', '/orders/2'],
  ['POST', '/orders'],
  ['GET', '/fail'],
  ['GET', '/nowhere'],
];
const out = (text = '') => process.stdout.write(`${text}\n`);

out(`core-service listening on ${base}`);
out('\nRequests:');
for (const [method, path, headers] of calls) {
  const response = await fetch(base + path, { method, headers: headers ?? {} });
  await response.arrayBuffer();
  out(
    `  ${method} ${path} -> ${response.status}  trace ${response.headers.get('traceresponse')?.split('-')[1]}`,
  );
}

out('\nSpan trees (from the in-memory exporter):');
const spans = sextant.tracing.finishedSpans();
const byParent = new Map<string | undefined, typeof spans>();
const ids = new Set(spans.map((span) => span.spanContext().spanId));
for (const span of spans) {
  const parent = span.parentSpanContext?.spanId;
  const key = parent && ids.has(parent) ? parent : undefined;
  byParent.set(key, [...(byParent.get(key) ?? []), span]);
}
const print = (span: (typeof spans)[number], depth: number) => {
  const ms = (span.duration[0] * 1e3 + span.duration[1] / 1e6).toFixed(1);
  const prefix = depth === 0 ? `  trace ${span.spanContext().traceId}\n    ` : `    ${'  '.repeat(depth)}└ `;
  out(`${prefix}${span.name} (${ms} ms, status ${span.status.code})`);
  for (const child of byParent.get(span.spanContext().spanId) ?? []) print(child, depth + 1);
};
for (const root of byParent.get(undefined) ?? []) print(root, 0);

out('\nSample log lines:');
for (const line of lines.filter((l) => l.includes('"request_id"')).slice(0, 4)) out(`  ${line.trim()}`);

const metrics = await (await fetch(`${base}/metrics`)).text();
out(`\nMetrics at ${base}/metrics (request series):`);
for (const line of metrics
  .split('\n')
  .filter((l) => l.startsWith('http_server_request_duration_seconds_count'))) {
  out(`  ${line}`);
}
const ready = await fetch(`${base}/health/ready`);
out(
  `\nHealth: ${base}/health -> ${(await fetch(`${base}/health`)).status}, ${base}/health/ready -> ${ready.status}`,
);
out(`Detailed: ${base}/health/detailed`);

server.close();
await sextant.shutdown();

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Sextant } from '@sextant/core';

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

export async function listen(app: (req: any, res: any) => void): Promise<RunningServer> {
  const { createServer } = await import('node:http');
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export { collectLines } from '../../../tooling/testing/log-collector.ts';

type FinishedSpan = ReturnType<Sextant['tracing']['finishedSpans']>[number];

/**
 * The server span of the request whose response carried `traceresponse`; it ends on the
 * response's `finish`, which can come a moment after the client has the response.
 */
export async function serverSpanOf(sextant: Sextant, response: Response): Promise<FinishedSpan> {
  const header = response.headers.get('traceresponse');
  if (!header) throw new Error(`no traceresponse header on ${response.url}`);
  const [, traceId, spanId] = header.split('-');
  for (let attempt = 0; attempt < 100; attempt++) {
    const span = sextant.tracing
      .finishedSpans()
      .find((s) => s.spanContext().traceId === traceId && s.spanContext().spanId === spanId);
    if (span) return span;
    await sleep(10);
  }
  throw new Error(`span ${spanId} of ${response.url} did not end`);
}

export async function waitFor<T>(read: () => T | undefined, what: string): Promise<T> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const value = read();
    if (value !== undefined) return value;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

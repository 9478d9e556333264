import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { trace } from '@opentelemetry/api';
import { getRequestId } from '@sextant/core';
import type { FastifyPluginAsync } from 'fastify';

const MAX_SLOW_MS = 10_000;

/** Routes that show the instrumentation at work: a slow request, and a failing one. */
export const diagnosticsRoutes: FastifyPluginAsync = async (app) => {
  // A timer and a file read between the request and its answer: the ids must survive both.
  app.get<{ Querystring: { ms: number } }>(
    '/slow',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { ms: { type: 'integer', minimum: 0, maximum: MAX_SLOW_MS, default: 0 } },
        },
      },
    },
    async (request) => {
      await sleep(request.query.ms);
      const manifest = await readFile(new URL('../../package.json', import.meta.url), 'utf8');
      request.log.info({ ms: request.query.ms, manifest_bytes: manifest.length }, 'slow request served');
      return { request_id: getRequestId(), trace_id: trace.getActiveSpan()?.spanContext().traceId };
    },
  );

  app.get('/fail', async () => {
    throw new Error('this route always fails');
  });
};

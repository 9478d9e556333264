import type { Sextant } from '@sextant/core';
import { sextantFastify, sextantServerOptions } from '@sextant/fastify';
import fastify, { type FastifyServerOptions } from 'fastify';
import { handleError } from './errors.ts';
import type { JobBackends } from './jobs.ts';
import { adminRoutes } from './routes/admin.ts';
import { diagnosticsRoutes } from './routes/diagnostics.ts';
import { jobsRoutes } from './routes/jobs.ts';

/**
 * The API, built from a Sextant instance and its job backends and not yet listening: `main.ts`
 * opens the backends from the environment and runs it, tests listen on port 0. Sextant's plugin
 * comes first, so its hooks reach every route after it; `handleError` answers failures (a generic
 * 500 for anything that is not the client's fault).
 */
export async function createApp(sextant: Sextant, jobs: JobBackends, options: FastifyServerOptions = {}) {
  const app = fastify({ ...sextantServerOptions(sextant), ...options });
  await app.register(sextantFastify, { sextant });
  app.setErrorHandler(handleError);

  await app.register(jobsRoutes, { prefix: '/jobs', jobs });
  await app.register(adminRoutes, { prefix: '/admin', sextant, jobs });
  await app.register(diagnosticsRoutes);
  return app;
}

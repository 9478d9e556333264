import type { Sextant } from '@sextant/core';
import type { FastifyPluginAsync } from 'fastify';
import { countJobsByStatus } from 'job-store';
import type { JobBackends } from '../jobs.ts';

export interface AdminRoutesOptions {
  sextant: Sextant;
  jobs: JobBackends;
}

/** `GET /admin/info` and, one plugin deeper, `GET /admin/jobs/stats`: routes keep both prefixes. */
export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app, { sextant, jobs }) => {
  app.get('/info', async () => ({
    service: sextant.config.serviceName,
    version: sextant.config.serviceVersion ?? null,
    uptime_seconds: Math.round(process.uptime()),
  }));

  await app.register(
    async (jobsAdmin) => {
      jobsAdmin.get('/stats', async () => countJobsByStatus(jobs.store));
    },
    { prefix: '/jobs' },
  );
};

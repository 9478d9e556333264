import type { Sextant } from '@sextant/core';
import type { FastifyPluginAsync } from 'fastify';
import type { JobStore } from '../jobs.ts';

export interface AdminRoutesOptions {
  sextant: Sextant;
  jobs: JobStore;
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
      jobsAdmin.get('/stats', async () => jobs.countByStatus());
    },
    { prefix: '/jobs' },
  );
};

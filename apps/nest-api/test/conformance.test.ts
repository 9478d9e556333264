import { fileURLToPath } from 'node:url';
import { describeHttpConformance } from '@sextant/testing/http-conformance';
import { describeStartupConformance } from '@sextant/testing/startup-conformance';
import { createTestBackends } from 'job-store/testing';
import { afterAll } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const backends = createTestBackends('nest_conformance');
afterAll(() => backends.cleanup());

describeHttpConformance('nest-api', {
  cwd,
  entry: 'dist/main.js',
  env: backends.env,
  countJobs: backends.countJobs,
});
describeHttpConformance('nest-api-fastify', {
  cwd,
  entry: 'dist/main.js',
  env: { ...backends.env, NEST_PLATFORM: 'fastify' },
  countJobs: backends.countJobs,
});
// The port is read before the platform is chosen: once is enough.
describeStartupConformance('nest-api', { cwd, entry: 'dist/main.js', env: backends.env });

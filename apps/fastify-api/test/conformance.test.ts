import { fileURLToPath } from 'node:url';
import { describeHttpConformance } from '@sextant/testing/http-conformance';
import { describeStartupConformance } from '@sextant/testing/startup-conformance';
import { createTestBackends } from 'job-store/testing';
import { afterAll } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const backends = createTestBackends('fastify_conformance');
afterAll(() => backends.cleanup());

describeHttpConformance('fastify-api', { cwd, env: backends.env, countJobs: backends.countJobs });
describeStartupConformance('fastify-api', { cwd, env: backends.env });

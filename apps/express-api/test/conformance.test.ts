import { fileURLToPath } from 'node:url';
import { describeHttpConformance } from '@sextant/testing/http-conformance';
import { describeStartupConformance } from '@sextant/testing/startup-conformance';
import { createTestBackends } from 'job-store/testing';
import { afterAll } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const backends = createTestBackends('express_conformance');
afterAll(() => backends.cleanup());

describeHttpConformance('express-api', { cwd, env: backends.env, countJobs: backends.countJobs });
describeStartupConformance('express-api', { cwd, env: backends.env });

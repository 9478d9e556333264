import { fileURLToPath } from 'node:url';
import { describeHttpConformance } from '@sextant/testing/http-conformance';
import { createTestBackends } from 'job-store/testing';
import { afterAll } from 'vitest';

const backends = createTestBackends('express_conformance');
afterAll(() => backends.cleanup());

describeHttpConformance('express-api', {
  cwd: fileURLToPath(new URL('..', import.meta.url)),
  env: backends.env,
});

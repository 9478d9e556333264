import { fileURLToPath } from 'node:url';
import { describeHttpConformance } from '@sextant/testing/http-conformance';

const cwd = fileURLToPath(new URL('..', import.meta.url));

describeHttpConformance('nest-api', { cwd, entry: 'dist/main.js' });
describeHttpConformance('nest-api-fastify', {
  cwd,
  entry: 'dist/main.js',
  env: { NEST_PLATFORM: 'fastify' },
});

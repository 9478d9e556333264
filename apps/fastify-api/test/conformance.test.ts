import { fileURLToPath } from 'node:url';
import { describeHttpConformance } from '@sextant/testing/http-conformance';

describeHttpConformance('fastify-api', { cwd: fileURLToPath(new URL('..', import.meta.url)) });

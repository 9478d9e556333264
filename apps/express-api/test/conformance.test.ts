import { fileURLToPath } from 'node:url';
import { describeHttpConformance } from '@sextant/testing/http-conformance';

describeHttpConformance('express-api', { cwd: fileURLToPath(new URL('..', import.meta.url)) });

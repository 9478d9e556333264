import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { trace } from '@opentelemetry/api';
import { getRequestId, type Sextant } from '@sextant/core';
import { createEndpointsHandler, createErrorHandler, createSextantMiddleware } from '@sextant/express';
import express, { type ErrorRequestHandler, type Express, type Router } from 'express';
import { createJobStore, type JobStore, jobView } from './jobs.ts';
import { validateProblem } from './problem.ts';

const MAX_SLOW_MS = 10_000;
const DEFAULT_SLOW_MS = 100;
// Read by /slow so that a request crosses real I/O as well as a timer.
const SMALL_FILE = new URL('../package.json', import.meta.url);

function jobsRouter(jobs: JobStore): Router {
  const router = express.Router();
  router.post('/', express.json({ limit: '1mb' }), (req, res) => {
    const validation = validateProblem(req.body);
    if (!validation.ok) {
      res.status(400).json({ error: validation.message });
      return;
    }
    const job = jobs.submit(validation.problem);
    res.status(202).json({ id: job.id });
  });
  router.get('/:id', (req, res) => {
    const job = jobs.get(req.params.id);
    if (job === undefined) res.status(404).json({ error: `no job with id ${JSON.stringify(req.params.id)}` });
    else res.json(jobView(job));
  });
  return router;
}

/** Operator views, nested two routers deep so their spans show full route templates. */
function adminRouter(jobs: JobStore): Router {
  const job = express.Router({ mergeParams: true });
  job.get('/timeline', (req, res) => {
    const found = jobs.get((req.params as { id: string }).id);
    if (found === undefined) res.status(404).json({ error: 'no such job' });
    else res.json({ id: found.id, timeline: found.timeline });
  });
  const router = express.Router();
  router.get('/jobs', (_req, res) => {
    res.json({ jobs: jobs.countByStatus() });
  });
  router.use('/jobs/:id', job);
  return router;
}

function parseDelay(value: unknown): number | undefined {
  if (value === undefined) return DEFAULT_SLOW_MS;
  const ms = typeof value === 'string' && /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
  return ms >= 0 && ms <= MAX_SLOW_MS ? ms : undefined;
}

/** The application's own error answer: JSON, with client errors (a malformed body) as 4xx. */
const answerError: ErrorRequestHandler = (error, _req, res, next) => {
  if (res.headersSent) {
    next(error);
    return;
  }
  const status = typeof error?.status === 'number' ? error.status : 500;
  if (status >= 400 && status < 500) {
    const message =
      error?.type === 'entity.parse.failed' ? 'the body is not valid JSON' : String(error.message);
    res.status(status).json({ error: message });
  } else {
    res.status(500).json({ error: 'internal server error' });
  }
};

/** The sample API on one Sextant instance; `main.ts` adds the environment and the listening socket. */
export function createApp(sextant: Sextant): Express {
  const jobs = createJobStore(sextant.logger);
  const app = express();
  app.disable('x-powered-by');

  app.use(createSextantMiddleware(sextant));
  app.use(createEndpointsHandler(sextant));

  app.use('/jobs', jobsRouter(jobs));
  app.use('/admin', adminRouter(jobs));

  app.get('/slow', async (req, res) => {
    const ms = parseDelay(req.query.ms);
    if (ms === undefined) {
      res.status(400).json({ error: `"ms" must be an integer from 0 to ${MAX_SLOW_MS}` });
      return;
    }
    await sleep(ms);
    const manifest = await readFile(SMALL_FILE, 'utf8');
    sextant.logger.info({ ms, bytes_read: manifest.length }, 'slow request done');
    res.json({ request_id: getRequestId(), trace_id: trace.getActiveSpan()?.spanContext().traceId });
  });

  app.get('/fail', () => {
    throw new Error('this route always fails');
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use(createErrorHandler(sextant));
  app.use(answerError);
  return app;
}

import { readFile } from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { trace } from '@opentelemetry/api';
import { getRequestId, type Sextant } from '@sextant/core';
import { createEndpointsHandler, createErrorHandler, createSextantMiddleware } from '@sextant/express';
import express, {
  type ErrorRequestHandler,
  type Express,
  type NextFunction,
  type Response,
  type Router,
} from 'express';
import {
  countJobsByStatus,
  findJob,
  type JobQueue,
  type JobStore,
  JobsUnavailableError,
  submitJob,
  validateJobOptions,
  validateProblem,
} from 'job-store';

const MAX_SLOW_MS = 10_000;
const DEFAULT_SLOW_MS = 100;
// Read by /slow so that a request crosses real I/O as well as a timer.
const SMALL_FILE = new URL('../package.json', import.meta.url);

/** The job store and the queue that `POST /jobs` writes to and `GET /jobs/:id` reads from. */
export interface JobBackends {
  store: JobStore;
  queue: JobQueue;
}

/**
 * Every error answer, in the shape the three sample APIs share (Fastify's and Nest's own):
 * `{ "statusCode": 400, "error": "Bad Request", "message": "..." }`.
 */
function answer(res: Response, statusCode: number, message: string): void {
  res.status(statusCode).json({ statusCode, error: STATUS_CODES[statusCode], message });
}

/** 503 when the store or the queue is away (the client may retry); anything else goes to the error handler. */
function answerUnavailable(error: unknown, res: Response, next: NextFunction): void {
  if (error instanceof JobsUnavailableError) answer(res, 503, error.message);
  else next(error);
}

function jobsRouter({ store, queue }: JobBackends): Router {
  const router = express.Router();
  router.post('/', express.json({ limit: '1mb' }), async (req, res, next) => {
    // The worker's own validation: a job answered 202 is one the worker can solve.
    const validation = validateProblem(req.body);
    if (!validation.ok) {
      answer(res, 400, validation.message);
      return;
    }
    const options = validateJobOptions((req.body as { options?: unknown }).options);
    if (!options.ok) {
      answer(res, 400, options.message);
      return;
    }
    try {
      const id = await submitJob(store, queue, validation.problem, options.options);
      res.status(202).json({ id });
    } catch (error) {
      answerUnavailable(error, res, next);
    }
  });
  router.get('/:id', async (req, res, next) => {
    try {
      const job = await findJob(store, req.params.id);
      if (job === undefined) answer(res, 404, `no job with id ${JSON.stringify(req.params.id)}`);
      else res.json(job);
    } catch (error) {
      answerUnavailable(error, res, next);
    }
  });
  return router;
}

/** Operator views, nested two routers deep so their spans show full route templates. */
function adminRouter({ store }: JobBackends): Router {
  const job = express.Router({ mergeParams: true });
  job.get('/attempts', async (req, res, next) => {
    try {
      const { id } = req.params as { id: string };
      const found = await findJob(store, id);
      if (found === undefined) answer(res, 404, `no job with id ${JSON.stringify(id)}`);
      else
        res.json({
          id: found.id,
          status: found.status,
          attempts: found.attempts,
          error: found.error ?? null,
        });
    } catch (error) {
      answerUnavailable(error, res, next);
    }
  });
  const router = express.Router();
  router.get('/jobs', async (_req, res, next) => {
    try {
      res.json({ jobs: await countJobsByStatus(store) });
    } catch (error) {
      answerUnavailable(error, res, next);
    }
  });
  router.use('/jobs/:id', job);
  return router;
}

function parseDelay(value: unknown): number | undefined {
  if (value === undefined) return DEFAULT_SLOW_MS;
  const ms = typeof value === 'string' && /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
  return ms >= 0 && ms <= MAX_SLOW_MS ? ms : undefined;
}

/**
 * The application's own error answer, after Sextant's error handler has put the error on the
 * span and in the log: client errors (a malformed body) as 4xx with their message; anything else
 * a generic 500 that tells the client nothing about the internals.
 */
const answerError: ErrorRequestHandler = (error, _req, res, next) => {
  if (res.headersSent) {
    next(error);
    return;
  }
  const status = typeof error?.status === 'number' ? error.status : 500;
  if (status >= 400 && status < 500) {
    const message =
      error?.type === 'entity.parse.failed' ? 'the body is not valid JSON' : String(error.message);
    answer(res, status, message);
  } else {
    answer(res, 500, 'internal server error');
  }
};

/**
 * The sample API on one Sextant instance and its job backends; `main.ts` opens them from the
 * environment and adds the listening socket.
 */
export function createApp(sextant: Sextant, jobs: JobBackends): Express {
  const app = express();
  app.disable('x-powered-by');

  app.use(createSextantMiddleware(sextant));
  app.use(createEndpointsHandler(sextant));

  app.use('/jobs', jobsRouter(jobs));
  app.use('/admin', adminRouter(jobs));

  app.get('/slow', async (req, res) => {
    const ms = parseDelay(req.query.ms);
    if (ms === undefined) {
      answer(res, 400, `"ms" must be an integer from 0 to ${MAX_SLOW_MS}`);
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
    answer(res, 404, 'not found');
  });
  app.use(createErrorHandler(sextant));
  app.use(answerError);
  return app;
}

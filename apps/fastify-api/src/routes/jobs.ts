import type { FastifyPluginAsync, FastifySchemaValidationError } from 'fastify';
import {
  findJob,
  JOB_ATTEMPTS,
  type JobOptions,
  JobsUnavailableError,
  MAX_DELAY_MS,
  submitJob,
} from 'job-store';
import { type JobBackends, MAX_EDGES, MAX_VERTEX, type MaxCutProblem } from '../jobs.ts';

const problemSchema = {
  type: 'object',
  required: ['type', 'edges'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', enum: ['maxcut'] },
    edges: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_EDGES,
      items: {
        type: 'array',
        minItems: 2,
        maxItems: 2,
        items: { type: 'integer', minimum: 0, maximum: MAX_VERTEX },
      },
    },
    // Demo knobs: a delayed job, and attempts the worker fails on purpose (retries).
    options: {
      type: 'object',
      additionalProperties: false,
      properties: {
        delayMs: { type: 'integer', minimum: 0, maximum: MAX_DELAY_MS },
        failAttempts: { type: 'integer', minimum: 0, maximum: JOB_ATTEMPTS },
      },
    },
  },
} as const;

/** One readable sentence per problem: `body/type must be one of: maxcut`. */
function describeValidationErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const problems = errors.map((error) => {
    const where = `${dataVar}${error.instancePath}`;
    const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues;
    if (allowed) return `${where} must be one of: ${allowed.join(', ')}`;
    return `${where} ${error.message}`;
  });
  const error = new Error(
    `invalid job: ${problems.join('; ')} (expected { "type": "maxcut", "edges": [[0, 1], ...] } with vertices 0..${MAX_VERTEX})`,
  );
  return Object.assign(error, { statusCode: 400 });
}

export interface JobsRoutesOptions {
  jobs: JobBackends;
}

/** The store or the queue is away: 503, the client may retry. */
function unavailable(error: unknown): never {
  if (error instanceof JobsUnavailableError)
    throw Object.assign(new Error(error.message), { statusCode: 503 });
  throw error;
}

/** `POST /` submits a problem, `GET /:id` reads a job; registered under `/jobs`. */
export const jobsRoutes: FastifyPluginAsync<JobsRoutesOptions> = async (app, { jobs }) => {
  app.post<{ Body: MaxCutProblem & { options?: JobOptions } }>(
    '/',
    { schema: { body: problemSchema }, schemaErrorFormatter: describeValidationErrors },
    async (request, reply) => {
      const { options, ...problem } = request.body;
      const id = await submitJob(jobs.store, jobs.queue, problem, options).catch(unavailable);
      request.log.info({ job_id: id, edges: problem.edges.length }, 'job queued');
      return reply.code(202).send({ id });
    },
  );

  app.get<{ Params: { id: string } }>('/:id', async (request, reply) => {
    const job = await findJob(jobs.store, request.params.id).catch(unavailable);
    if (job === undefined) return reply.code(404).send({ error: 'job not found', id: request.params.id });
    return job;
  });
};

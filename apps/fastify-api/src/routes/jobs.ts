import type { FastifyPluginAsync, FastifySchemaValidationError } from 'fastify';
import { type JobStore, MAX_EDGES, MAX_VERTEX, type MaxCutProblem } from '../jobs.ts';

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
  jobs: JobStore;
}

/** `POST /` submits a problem, `GET /:id` reads a job; registered under `/jobs`. */
export const jobsRoutes: FastifyPluginAsync<JobsRoutesOptions> = async (app, { jobs }) => {
  app.post<{ Body: MaxCutProblem }>(
    '/',
    { schema: { body: problemSchema }, schemaErrorFormatter: describeValidationErrors },
    async (request, reply) => {
      const job = jobs.submit(request.body);
      request.log.info({ job_id: job.id, edges: request.body.edges.length }, 'job queued');
      return reply.code(202).send({ id: job.id });
    },
  );

  app.get<{ Params: { id: string } }>('/:id', async (request, reply) => {
    const job = jobs.get(request.params.id);
    if (job === undefined) return reply.code(404).send({ error: 'job not found', id: request.params.id });
    return job;
  });
};

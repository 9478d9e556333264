import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { findJob, JobsUnavailableError, submitJob, validateJobOptions, validateProblem } from 'job-store';
import { answerError } from '../errors.ts';
import type { JobBackends } from '../jobs.ts';

export interface JobsRoutesOptions {
  jobs: JobBackends;
}

/** The store or the queue is away: 503, the client may retry; anything else is the error handler's. */
function answerUnavailable(error: unknown, reply: FastifyReply): FastifyReply {
  if (error instanceof JobsUnavailableError) return answerError(reply, 503, error.message);
  throw error;
}

/** `POST /` submits a problem, `GET /:id` reads a job; registered under `/jobs`. */
export const jobsRoutes: FastifyPluginAsync<JobsRoutesOptions> = async (app, { jobs }) => {
  // Validated by hand with the worker's own rules (job-store's `validateProblem`), not a JSON schema: every
  // message says what is wrong and what is allowed, and a 202 is a job the worker can solve.
  app.post<{ Body: unknown }>('/', async (request, reply) => {
    const validation = validateProblem(request.body);
    if (!validation.ok) return answerError(reply, 400, validation.message);
    // Demo knobs: a delayed job, and attempts the worker fails on purpose (retries).
    const options = validateJobOptions((request.body as { options?: unknown }).options);
    if (!options.ok) return answerError(reply, 400, options.message);
    const { problem } = validation;
    try {
      const id = await submitJob(jobs.store, jobs.queue, problem, options.options);
      request.log.info({ job_id: id, problem_type: problem.type }, 'job queued');
      return reply.code(202).send({ id });
    } catch (error) {
      return answerUnavailable(error, reply);
    }
  });

  app.get<{ Params: { id: string } }>('/:id', async (request, reply) => {
    const { id } = request.params;
    try {
      const job = await findJob(jobs.store, id);
      if (job === undefined) return answerError(reply, 404, `no job with id ${JSON.stringify(id)}`);
      return job;
    } catch (error) {
      return answerUnavailable(error, reply);
    }
  });
};

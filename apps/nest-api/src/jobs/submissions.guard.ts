import {
  type CanActivate,
  type ExecutionContext,
  Injectable,
  Logger,
  ServiceUnavailableException,
} from '@nestjs/common';

/**
 * Refuses new jobs while `JOBS_PAUSED=1` (a maintenance switch), and says so in the log: the
 * guard runs inside the request's span, so its record carries the request's ids.
 */
@Injectable()
export class SubmissionsGuard implements CanActivate {
  readonly #logger = new Logger(SubmissionsGuard.name);
  readonly #paused = process.env.JOBS_PAUSED === '1';

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, unknown> }>();
    if (this.#paused) throw new ServiceUnavailableException('job submissions are paused');
    this.#logger.log({ msg: 'job submission admitted', content_type: request.headers['content-type'] });
    return true;
  }
}

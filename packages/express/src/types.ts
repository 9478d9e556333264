import type { Request } from 'express';

/** Options of {@link createSextantMiddleware}, validated once when it is created. */
export interface SextantExpressOptions {
  /**
   * Requests for which nothing is recorded: no span, no request metrics, no access log record
   * and no correlation id. Called once per request, before routing; a throw counts as `false`
   * and is reported to Sextant's internal error sink. Sextant's own endpoints and core's
   * `http.ignorePaths` are left out already. Default: none.
   */
  ignore?: (req: Request) => boolean;
}

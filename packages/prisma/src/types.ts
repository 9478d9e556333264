/** Options of {@link sextantPrisma}, validated once when the extension is created. */
export interface SextantPrismaOptions {
  /**
   * Adds the operation's arguments to its span (`prisma.args`, JSON) and to its slow-query log
   * record, redacted by Sextant's redactor (secret keys, emails, card numbers, tokens...).
   * Raw queries never carry their values, only their SQL text (`db.query.text`), with the
   * literals written into it replaced by `?`. Also puts the last line of a
   * failure's message (redacted), which can quote a value, on its `exception` event. Default
   * `false`: no parameter value leaves the process, errors are described by code only.
   */
  includeArgs?: boolean;
  /**
   * Operations that take at least this many milliseconds are logged at `warn` as
   * `slow database operation`; `false` turns the log off. Default 500, or
   * `SEXTANT_PRISMA_SLOW_QUERY_MS` (milliseconds, or `off`), read from the environment Sextant was
   * created with (`createSextant({ env })`, else `process.env`).
   */
  slowQueryMs?: number | false;
  /**
   * `db.system.name` of the spans and metric, used instead of the client's provider whenever it
   * is given. Default: read from the client's provider (`postgresql`, `sqlite`, `mysql`...).
   */
  dbSystemName?: string;
  /**
   * A CLIENT span per operation. `false` keeps the duration metric and the slow-query log and
   * starts no span: the operation then costs what it does under an unsampled parent, and the
   * driver runs in the caller's context. Default `true`.
   */
  spans?: boolean;
}

/** Options of {@link prismaHealthCheck}. */
export interface PrismaHealthCheckOptions {
  /** Check name in the health reports. Default `prisma`. */
  name?: string;
  /** A failing critical check makes readiness answer 503. Default `true`. */
  critical?: boolean;
  /** Milliseconds before the check counts as down. Default: Sextant's `health.checkTimeoutMs`. */
  timeoutMs?: number;
}

/** Options of {@link registerPgPoolMetrics}. */
export interface PgPoolMetricsOptions {
  /**
   * `db_client_connection_pool_name` label value. Default `host:port/database`, from the pool's
   * connection string when it has one (without its user, password or parameters), else from its
   * `host`, `port` and `database`; give each pool its own name when several connect to the same
   * database.
   */
  poolName?: string;
}

import { METRICS, type Sextant, type SextantGauge } from '@sextant/core';
import { assertSextant, describeValue, fail } from './options.ts';
import type { PgPoolMetricsOptions } from './types.ts';

/** What node-postgres' `Pool` exposes about itself (the pool given to `new PrismaPg(pool)`). */
export interface PgPoolLike {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options?: {
    max?: number;
    host?: string;
    port?: number;
    database?: string;
    connectionString?: string;
  };
}

type PoolName = 'db_client_connection_pool_name';
type ConnectionLabels = PoolName | 'db_client_connection_state';

interface PoolGauges {
  readonly pools: Map<string, PgPoolLike>;
  readonly connections: SextantGauge<ConnectionLabels>;
  readonly pending: SextantGauge<PoolName>;
  readonly max: SextantGauge<PoolName>;
}

const MAX_POOL_NAME_LENGTH = 128;
const USER_INFO = /^([^:/?#]+:\/\/)[^/?#]*@/;
const KNOWN_OPTIONS: ReadonlySet<string> = new Set(['poolName']);
// One set of gauges per Sextant instance, reading every registered pool at scrape time.
const gaugesBySextant = new WeakMap<Sextant, PoolGauges>();

function isPool(value: unknown): value is PgPoolLike {
  const pool = value as Partial<PgPoolLike> | null;
  return (
    typeof pool === 'object' &&
    pool !== null &&
    typeof pool.totalCount === 'number' &&
    typeof pool.idleCount === 'number' &&
    typeof pool.waitingCount === 'number'
  );
}

interface PoolAddress {
  host?: string;
  port?: string;
  database?: string;
}

/**
 * Host, port and database of a connection string, and nothing else: its user, password and
 * parameters (`sslmode`, `options`...) stay out of the label. Undefined when it is not a URL.
 */
function addressOf(connectionString: string): PoolAddress | undefined {
  let url: URL;
  try {
    // Without its user and password, a socket URL (`postgresql://app:pw@/orders?host=...`) parses.
    url = new URL(connectionString.replace(USER_INFO, '$1'));
  } catch {
    return undefined;
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') return undefined;
  const address: PoolAddress = {};
  // A Unix socket is named by the `host` parameter (`postgresql:///orders?host=/var/run/postgresql`).
  const host = url.hostname || url.searchParams.get('host');
  if (host) address.host = host;
  if (url.port) address.port = url.port;
  const database = url.pathname.slice(1);
  if (database) {
    try {
      address.database = decodeURIComponent(database);
    } catch {
      address.database = database;
    }
  }
  return address;
}

function defaultPoolName(pool: PgPoolLike): string {
  const { host, port, database, connectionString } = pool.options ?? {};
  // pg connects where the connection string says, whatever host or database is also set.
  const address = typeof connectionString === 'string' ? addressOf(connectionString) : undefined;
  const name = `${address?.host ?? host ?? 'localhost'}:${address?.port ?? port ?? 5432}/${address?.database ?? database ?? ''}`;
  return name.slice(0, MAX_POOL_NAME_LENGTH);
}

function gaugesOf(sextant: Sextant): PoolGauges {
  const existing = gaugesBySextant.get(sextant);
  if (existing !== undefined) return existing;
  const pools = new Map<string, PgPoolLike>();
  const gauges: PoolGauges = {
    pools,
    connections: sextant.metrics.gauge<ConnectionLabels>({
      ...METRICS.dbClientConnections,
      collect(gauge) {
        for (const [name, pool] of pools) {
          gauge.set(
            { db_client_connection_pool_name: name, db_client_connection_state: 'idle' },
            pool.idleCount,
          );
          gauge.set(
            { db_client_connection_pool_name: name, db_client_connection_state: 'used' },
            pool.totalCount - pool.idleCount,
          );
        }
      },
    }),
    pending: sextant.metrics.gauge<PoolName>({
      ...METRICS.dbClientConnectionPendingRequests,
      collect(gauge) {
        for (const [name, pool] of pools)
          gauge.set({ db_client_connection_pool_name: name }, pool.waitingCount);
      },
    }),
    max: sextant.metrics.gauge<PoolName>({
      ...METRICS.dbClientConnectionMax,
      collect(gauge) {
        for (const [name, pool] of pools) {
          // node-postgres' default when `max` is not set.
          gauge.set({ db_client_connection_pool_name: name }, pool.options?.max ?? 10);
        }
      },
    }),
  };
  gaugesBySextant.set(sextant, gauges);
  return gauges;
}

function validPoolName(options: unknown): string | undefined {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    fail(`registerPgPoolMetrics(): options must be an object, got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      fail(
        `registerPgPoolMetrics(): unknown option ${JSON.stringify(key)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`,
      );
    }
  }
  const { poolName } = options as PgPoolMetricsOptions;
  if (
    poolName !== undefined &&
    (typeof poolName !== 'string' || poolName === '' || poolName.length > MAX_POOL_NAME_LENGTH)
  ) {
    const got =
      typeof poolName === 'string' ? `a string of ${poolName.length} characters` : describeValue(poolName);
    fail(
      `registerPgPoolMetrics(): poolName must be a string of 1 to ${MAX_POOL_NAME_LENGTH} characters, got ${got}`,
    );
  }
  return poolName;
}

/**
 * Publishes a node-postgres pool's connections (idle, used), waiting requests and maximum as
 * gauges read at scrape time. Pass the pool you give `new PrismaPg(pool)`: a pool the adapter
 * creates from a connection string is private to it. Returns the function that stops
 * publishing the pool and removes its series.
 */
export function registerPgPoolMetrics(
  sextant: Sextant,
  pool: PgPoolLike,
  options: PgPoolMetricsOptions = {},
): () => void {
  assertSextant(sextant, 'registerPgPoolMetrics');
  if (!isPool(pool)) {
    fail(
      `registerPgPoolMetrics() expects a pg Pool (totalCount, idleCount and waitingCount numbers), got ${describeValue(pool)}`,
    );
  }
  const name = validPoolName(options) ?? defaultPoolName(pool);
  const gauges = gaugesOf(sextant);
  if (gauges.pools.has(name)) {
    fail(
      `registerPgPoolMetrics(): a pool named ${JSON.stringify(name)} is already registered: give each pool its own poolName`,
    );
  }
  gauges.pools.set(name, pool);
  return () => {
    if (gauges.pools.get(name) !== pool) return;
    gauges.pools.delete(name);
    for (const state of ['idle', 'used']) {
      gauges.connections.remove({ db_client_connection_pool_name: name, db_client_connection_state: state });
    }
    gauges.pending.remove({ db_client_connection_pool_name: name });
    gauges.max.remove({ db_client_connection_pool_name: name });
  };
}

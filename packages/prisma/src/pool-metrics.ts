import { METRICS, type Sextant, type SextantGauge } from '@sextant/core';
import { assertSextant, fail } from './options.ts';
import type { PgPoolMetricsOptions } from './types.ts';

/** What node-postgres' `Pool` exposes about itself (the pool given to `new PrismaPg(pool)`). */
export interface PgPoolLike {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options?: { max?: number; host?: string; port?: number; database?: string };
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

function defaultPoolName(pool: PgPoolLike): string {
  const { host, port, database } = pool.options ?? {};
  return `${host ?? 'localhost'}:${port ?? 5432}/${database ?? ''}`.slice(0, MAX_POOL_NAME_LENGTH);
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

/**
 * Publishes a node-postgres pool's connections (idle, used), waiting requests and maximum as
 * gauges read at scrape time. Pass the pool you give `new PrismaPg(pool)`: a pool the adapter
 * creates from a connection string is private to it. Returns the function that stops
 * publishing the pool (its series then read 0).
 */
export function registerPgPoolMetrics(
  sextant: Sextant,
  pool: PgPoolLike,
  options: PgPoolMetricsOptions = {},
): () => void {
  assertSextant(sextant, 'registerPgPoolMetrics');
  if (!isPool(pool)) {
    fail('registerPgPoolMetrics() expects a pg Pool (totalCount, idleCount and waitingCount numbers)');
  }
  const { poolName } = options;
  if (
    poolName !== undefined &&
    (typeof poolName !== 'string' || poolName === '' || poolName.length > MAX_POOL_NAME_LENGTH)
  ) {
    fail(`registerPgPoolMetrics(): poolName must be 1 to ${MAX_POOL_NAME_LENGTH} characters`);
  }
  const name = poolName ?? defaultPoolName(pool);
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
      gauges.connections.set({ db_client_connection_pool_name: name, db_client_connection_state: state }, 0);
    }
    gauges.pending.set({ db_client_connection_pool_name: name }, 0);
    gauges.max.set({ db_client_connection_pool_name: name }, 0);
  };
}

/**
 * The processes of a race: server variants pinned to one core (each a child running server.ts from
 * this checkout or another one), the OTLP sink, and the load generator pinning itself to the other.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { pinToCore } from '@sextant/bench';
import autocannon from 'autocannon';
import type { BenchMessage, ServerMessage, VariantName } from './variants.ts';

export const SERVER_CORE = '0';
export const LOAD_CORE = '1';
/** The one route every server variant serves. */
export const PATH = '/users/42';

export interface LoadOptions {
  connections: number;
  pipelining: number;
}

export interface Sample {
  requestsPerSecond: number;
  p99Ms: number;
  cpuMicrosPerRequest: number;
  coreBusy: number;
  requests: number;
}

// Same batch limits for Sextant and the OpenTelemetry SDK (both read OTEL_BSP_*): a queue large
// enough that neither drops spans at full load, so both pay for exporting every span.
export const SERVER_ENV = {
  ...process.env,
  NODE_ENV: 'production',
  OTEL_BSP_MAX_QUEUE_SIZE: '16384',
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '512',
  OTEL_BSP_SCHEDULE_DELAY: '1000',
  OTEL_METRICS_EXPORTER: 'none',
  OTEL_LOGS_EXPORTER: 'none',
  OTEL_TRACES_SAMPLER: 'always_on',
};

export const SERVER_SCRIPT = fileURLToPath(new URL('./server.ts', import.meta.url));

export interface Server {
  variant: VariantName;
  child: ChildProcess;
  url: string;
  request<T extends ServerMessage['type']>(
    message: BenchMessage,
    reply: T,
  ): Promise<Extract<ServerMessage, { type: T }>>;
}

export function pinSelf(core: string): void {
  if (!pinToCore([process.pid], core))
    throw new Error(`http-bench: taskset could not pin this process to core ${core}`);
}

function nodeArgs(): string[] {
  return [
    '--conditions=sextant-source',
    ...process.execArgv.filter((arg) => !arg.startsWith('--conditions')),
  ];
}

/** `serverScript`: another checkout's tooling/http-bench/src/server.ts, to race two revisions. */
export async function startServer(
  variant: VariantName,
  otlpBase: string,
  serverScript = SERVER_SCRIPT,
): Promise<Server> {
  const child = fork(serverScript, [variant, otlpBase], {
    execPath: 'taskset',
    execArgv: ['-c', SERVER_CORE, process.execPath, ...nodeArgs()],
    env: SERVER_ENV,
    // Stdout is /dev/null: where Sextant's default log writer goes.
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`http-bench: server ${variant} exited with code ${code} before it was ready`);
  });
  // Only the race below reads it: the server exits (stopServer) long after it was ready.
  exited.catch(() => {});
  const [ready] = (await Promise.race([once(child, 'message'), exited])) as [ServerMessage];
  if (ready.type !== 'ready')
    throw new Error(`http-bench: server ${variant} sent ${ready.type} before ready`);
  return {
    variant,
    child,
    url: `http://127.0.0.1:${ready.port}`,
    async request(message, reply) {
      const answer = new Promise<ServerMessage>((resolve) => {
        const onMessage = (received: ServerMessage) => {
          if (received.type !== reply) return;
          child.off('message', onMessage);
          resolve(received);
        };
        child.on('message', onMessage);
      });
      child.send(message);
      return (await answer) as never;
    },
  };
}

export async function stopServer(server: Server): Promise<void> {
  const exited = once(server.child, 'exit');
  server.child.disconnect();
  await exited;
}

export async function load(url: string, seconds: number, options: LoadOptions) {
  return autocannon({
    url: `${url}${PATH}`,
    connections: options.connections,
    pipelining: options.pipelining,
    duration: seconds,
    headers: { accept: 'application/json', 'user-agent': 'http-bench/1.0' },
  });
}

export async function measure(server: Server, seconds: number, options: LoadOptions): Promise<Sample> {
  const before = await server.request({ type: 'usage' }, 'usage');
  const started = process.hrtime.bigint();
  const result = await load(server.url, seconds, options);
  const elapsedMicros = Number(process.hrtime.bigint() - started) / 1000;
  const after = await server.request({ type: 'usage' }, 'usage');
  const completed = result['2xx'] + result.non2xx;
  if (result.errors > 0 || result.non2xx > 0 || result.timeouts > 0 || completed === 0) {
    throw new Error(
      `http-bench: ${server.variant}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx, ${completed} completed`,
    );
  }
  const cpuMicros = after.cpuMicros - before.cpuMicros;
  return {
    requestsPerSecond: completed / result.duration,
    p99Ms: result.latency.p99,
    cpuMicrosPerRequest: cpuMicros / completed,
    coreBusy: cpuMicros / elapsedMicros,
    requests: completed,
  };
}

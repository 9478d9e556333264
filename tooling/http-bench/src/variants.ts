/** The servers of the race: each framework bare, with Sextant, and with the usual peer stack. */
export const FRAMEWORKS = ['express', 'fastify', 'nest'] as const;
export const STACKS = ['bare', 'sextant', 'peer'] as const;

export type Framework = (typeof FRAMEWORKS)[number];
export type Stack = (typeof STACKS)[number];
export type VariantName = `${Framework}-${Stack}`;

export const VARIANTS: readonly VariantName[] = FRAMEWORKS.flatMap((framework) =>
  STACKS.map((stack) => `${framework}-${stack}` as VariantName),
);

export const FRAMEWORK_LABELS: Record<Framework, string> = {
  express: 'Express 5',
  fastify: 'Fastify 5',
  nest: 'NestJS 12 (Express)',
};

export const STACK_LABELS: Record<Framework, Record<Stack, string>> = {
  express: {
    bare: 'bare',
    sextant: '@sextant/express',
    peer: 'OTel SDK (http + express) + express-prom-bundle + pino-http',
  },
  fastify: {
    bare: 'bare',
    sextant: '@sextant/fastify',
    peer: "OTel SDK (http) + @fastify/otel + fastify-metrics + Fastify's logger",
  },
  nest: {
    bare: 'bare',
    sextant: '@sextant/nestjs',
    peer: 'OTel SDK (http + express) + @willsoto/nestjs-prometheus + pino-http',
  },
};

/** Messages between the bench and a server child, over the IPC channel. */
export type ServerMessage =
  | { type: 'ready'; port: number }
  | { type: 'usage'; cpuMicros: number; maxRssKiB: number }
  | { type: 'flushed' };
export type BenchMessage = { type: 'usage' } | { type: 'flush' };

export function parseVariant(value: string | undefined): { framework: Framework; stack: Stack } {
  const [framework, stack] = (value ?? '').split('-') as [Framework, Stack];
  if (!FRAMEWORKS.includes(framework) || !STACKS.includes(stack)) {
    throw new Error(`http-bench: unknown variant '${value}', expected one of ${VARIANTS.join(', ')}`);
  }
  return { framework, stack };
}

import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Get, Query } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import { getRequestId, type Sextant } from '@sextant/core';
import { InjectLogger } from '@sextant/nestjs';
import { SlowDelayPipe } from './slow-delay.pipe.ts';

// Read by /slow so that a request crosses real I/O as well as a timer.
const SMALL_FILE = new URL('../../package.json', import.meta.url);

/** Routes that show the request's context surviving timers and I/O, and a failure. */
@Controller()
export class DiagnosticsController {
  readonly #logger: Sextant['logger'];

  constructor(@InjectLogger() logger: Sextant['logger']) {
    this.#logger = logger;
  }

  @Get('slow')
  async slow(@Query('ms', SlowDelayPipe) ms: number) {
    await sleep(ms);
    const manifest = await readFile(SMALL_FILE, 'utf8');
    this.#logger.info({ ms, bytes_read: manifest.length }, 'slow request done');
    return { request_id: getRequestId(), trace_id: trace.getActiveSpan()?.spanContext().traceId };
  }

  @Get('fail')
  fail(): never {
    throw new Error('this route always fails');
  }
}

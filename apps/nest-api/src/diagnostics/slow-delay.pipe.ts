import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';

export const MAX_SLOW_MS = 10_000;
const DEFAULT_SLOW_MS = 100;

/** `?ms=N`: an integer from 0 to 10,000, 100 when absent. */
@Injectable()
export class SlowDelayPipe implements PipeTransform<string | undefined, number> {
  transform(value: string | undefined): number {
    if (value === undefined) return DEFAULT_SLOW_MS;
    const ms = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
    if (!(ms >= 0 && ms <= MAX_SLOW_MS)) {
      throw new BadRequestException(`"ms" must be an integer from 0 to ${MAX_SLOW_MS}`);
    }
    return ms;
  }
}

import {
  BadRequestException,
  type CanActivate,
  Controller,
  type ExecutionContext,
  ForbiddenException,
  Get,
  Inject,
  Injectable,
  Logger,
  Module,
  NotFoundException,
  Param,
  type PipeTransform,
  SetMetadata,
  UseGuards,
  UsePipes,
  Version,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiOperation } from '@nestjs/swagger';
import { trace } from '@opentelemetry/api';
import { down, getRequestId, type Sextant, up } from '@sextant/core';
import { BehaviorSubject, delay, map, type Observable, of, throwError } from 'rxjs';
import {
  HealthIndicator,
  InjectSextant,
  NoTrace,
  type SextantHealthIndicator,
  Traced,
} from '../src/index.ts';

export const ROLES = 'roles';

@Injectable()
export class RolesGuard implements CanActivate {
  readonly #reflector: Reflector;
  readonly #logger = new Logger('RolesGuard');
  constructor(@Inject(Reflector) reflector: Reflector) {
    this.#reflector = reflector;
  }
  canActivate(context: ExecutionContext): boolean {
    const roles = this.#reflector.get<string[] | undefined>(ROLES, context.getHandler()) ?? [];
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string | undefined> }>();
    const role = request.headers['x-role'];
    this.#logger.log({ msg: 'guard checked', roles, role, guard_request_id: getRequestId() });
    if (roles.length > 0 && (role === undefined || !roles.includes(role)))
      throw new ForbiddenException('role required');
    return true;
  }
}

@Injectable()
export class PositiveIntPipe implements PipeTransform<string, number> {
  transform(value: string): number {
    const number = Number(value);
    if (!Number.isSafeInteger(number) || number < 0)
      throw new BadRequestException('id must be a non-negative integer');
    return number;
  }
}

@Injectable()
export class UsersService {
  @Traced()
  async find(id: number): Promise<{ id: number; trace_id: string | undefined }> {
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (id === 404) throw new NotFoundException(`no user ${id}`);
    if (id === 500) throw new Error('database on fire');
    return { id, trace_id: trace.getActiveSpan()?.spanContext().traceId };
  }

  @Traced('users.stream', { attributes: { 'app.kind': 'stream' } })
  stream(count: number): Observable<number[]> {
    const methodSpanId = trace.getActiveSpan()?.spanContext().spanId;
    return of(count).pipe(
      delay(2),
      map((n) => {
        if (n === 13) throw new Error('unlucky');
        // Still inside the span: the map callback runs in the subscription's context.
        const active = trace.getActiveSpan();
        if (active?.spanContext().spanId !== methodSpanId) throw new Error('lost the method span');
        // Still recording: the span did not end when the method returned the Observable.
        if (active?.isRecording() !== true) throw new Error('the span ended before the Observable completed');
        return Array.from({ length: n }, (_, i) => i);
      }),
    );
  }

  @Traced()
  failing(): Observable<never> {
    return throwError(() => new Error('stream failed'));
  }

  readonly selected = new BehaviorSubject<number>(7);

  /** A Subject is used through its own API (`value`, `next`): it must come back as itself. */
  @Traced('users.selected')
  selection(): BehaviorSubject<number> {
    return this.selected;
  }
}

@Controller('users')
export class UsersController {
  readonly #users: UsersService;
  readonly #sextant: Sextant;
  constructor(@Inject(UsersService) users: UsersService, @InjectSextant() sextant: Sextant) {
    this.#users = users;
    this.#sextant = sextant;
  }

  // Decorators below @Traced() write to the original method, those above to its wrapper: both reach Nest.
  @Get(':id')
  @Version('1')
  @ApiOperation({ summary: 'one user' })
  @Traced('UsersController.get')
  @UseGuards(RolesGuard)
  @UsePipes(PositiveIntPipe)
  @SetMetadata(ROLES, ['reader'])
  async get(@Param('id') id: number) {
    this.#sextant.logger.info({ id }, 'getting a user');
    return this.#users.find(id);
  }

  @Get(':id/stream')
  @Version('1')
  stream(@Param('id') id: string): Observable<number[]> {
    return this.#users.stream(Number(id));
  }

  @Get(':id/failing-stream')
  @Version('1')
  failing(): Observable<never> {
    return this.#users.failing();
  }

  @NoTrace()
  @Get('internal/ping')
  @Version('1')
  ping() {
    return { pong: true, request_id: getRequestId() ?? null };
  }
}

@HealthIndicator({ name: 'users-db', critical: true })
@Injectable()
export class UsersDbHealth implements SextantHealthIndicator {
  healthy = true;
  check() {
    return this.healthy ? up({ pool: 1 }) : down('pool exhausted');
  }
}

@Module({
  controllers: [UsersController],
  providers: [UsersService, RolesGuard, PositiveIntPipe, UsersDbHealth],
})
export class UsersModule {}

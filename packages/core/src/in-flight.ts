/** Requests and jobs in progress, counted so that shutdown can wait for them to finish. */
export interface InFlight {
  /** Counts one unit of work in; call the returned function when it ends (calling it again does nothing). */
  start(): () => void;
  readonly count: number;
  /**
   * Resolves `true` once no work is in progress, or `false` when `timeoutMs` passes first. The
   * timer is unref'ed: waiting never keeps an otherwise finished process alive.
   */
  idle(timeoutMs: number): Promise<boolean>;
}

/** setTimeout's largest delay; a longer one fires at once (with a warning). */
const MAX_TIMER_DELAY_MS = 2_147_483_647;

export function createInFlight(): InFlight {
  let count = 0;
  const waiters = new Set<(reachedZero: boolean) => void>();

  function end(): void {
    count -= 1;
    if (count !== 0 || waiters.size === 0) return;
    for (const waiter of waiters) waiter(true);
  }

  return {
    start() {
      count += 1;
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        end();
      };
    },
    get count() {
      return count;
    },
    idle(timeoutMs) {
      if (count === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const finish = (reachedZero: boolean) => {
          clearTimeout(timer);
          waiters.delete(finish);
          resolve(reachedZero);
        };
        // `> 0` also turns NaN into 0: a bad timeout never throws, it just does not wait.
        const delay = timeoutMs > 0 ? Math.min(timeoutMs, MAX_TIMER_DELAY_MS) : 0;
        const timer = setTimeout(finish, delay, false);
        timer.unref();
        waiters.add(finish);
      });
    },
  };
}

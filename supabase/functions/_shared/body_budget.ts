// How much memory the request bodies of this instance may hold at once: a request reserves what its
// body may cost before it reads a byte, gives back the excess once it knows the real cost, and the
// rest when it is answered. Requests that do not fit wait in line (first come, first served within
// a priority; a higher priority goes first), at most BODY_WAIT_MS, then get 503 with Retry-After.
// Written here because the npm semaphores count permits one by one (async-mutex's weighted one
// walks every unit of its value on each release: ~1 s per request with a budget counted in bytes).
import { ApiError, RETRY_AFTER_SECONDS } from "./errors.ts";

/** What all bodies in flight may cost together: two-thirds of the 96 MB V8 heap cap. */
export const BODY_BUDGET_BYTES = 64 * 1024 * 1024;
export const BODY_WAIT_MS = 10_000;

interface Waiter {
  cost: number;
  priority: number;
  admit(): void;
}

let available = BODY_BUDGET_BYTES;
const waiting: Waiter[] = [];

function admitWaiting(): void {
  while (waiting.length > 0 && waiting[0].cost <= available) {
    const next = waiting.shift()!;
    available -= next.cost;
    next.admit();
  }
}

function giveBack(cost: number): void {
  available += cost;
  admitWaiting();
}

function overloaded(): ApiError {
  return new ApiError(
    503,
    "SERVICE_UNAVAILABLE",
    "Too many large requests are in progress; retry shortly.",
    undefined,
    { "Retry-After": String(RETRY_AFTER_SECONDS) },
  );
}

export interface BodyLease {
  /** Gives back what is reserved beyond `cost`. */
  settle(cost: number): void;
  release(): void;
}

/** Bytes of the budget not reserved now (for the tests). */
export function bodyBudgetAvailable(): number {
  return available;
}

/** Waits until `cost` bytes fit in the budget, or throws 503 after `waitMs`. */
export async function reserveBody(
  cost: number,
  priority: number,
  waitMs = BODY_WAIT_MS,
): Promise<BodyLease> {
  let held = Math.min(BODY_BUDGET_BYTES, Math.max(1, Math.ceil(cost)));
  const ahead = waiting.findIndex((w) => w.priority < priority);
  const position = ahead === -1 ? waiting.length : ahead;
  if (position === 0 && held <= available) {
    available -= held;
  } else {
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        cost: held,
        priority,
        admit() {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        waiting.splice(waiting.indexOf(waiter), 1);
        admitWaiting(); // those behind it may fit now
        reject(overloaded());
      }, waitMs);
      waiting.splice(position, 0, waiter);
    });
  }
  return {
    settle(cost) {
      const excess = held - Math.max(1, Math.ceil(cost));
      if (excess > 0) {
        held -= excess;
        giveBack(excess);
      }
    },
    release() {
      const rest = held;
      held = 0;
      if (rest > 0) giveBack(rest);
    },
  };
}

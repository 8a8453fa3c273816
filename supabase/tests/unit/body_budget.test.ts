// The instance's body budget: reservations fit or wait in line, higher priority first; the excess
// is given back at settle and the rest at release; a wait past its time is 503 with Retry-After and
// leaves the line as it was.
import assert from "node:assert/strict";
import {
  BODY_BUDGET_BYTES,
  bodyBudgetAvailable,
  reserveBody,
} from "../../functions/_shared/body_budget.ts";
import { ApiError } from "../../functions/_shared/errors.ts";

const MiB = 1024 * 1024;
const settled = <T>(p: Promise<T>) => {
  const state = { done: false };
  p.then(() => state.done = true, () => state.done = true);
  return state;
};
const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

Deno.test("reservations wait for room, small ones ahead of large ones, and give it all back", async () => {
  const whole = BODY_BUDGET_BYTES;
  assert.equal(bodyBudgetAvailable(), whole);
  const big = await reserveBody(whole - MiB, 0);
  const large = reserveBody(2 * MiB, 0);
  const small = reserveBody(2 * MiB, 1);
  const [largeState, smallState] = [settled(large), settled(small)];
  await tick();
  assert.deepEqual([largeState.done, smallState.done], [false, false]);
  // settling the first one gives back its excess: the small one (higher priority) goes first
  big.settle(whole - 3 * MiB);
  await tick();
  assert.deepEqual([largeState.done, smallState.done], [false, true]);
  big.release();
  await tick();
  assert.equal(largeState.done, true);
  (await small).release();
  const leased = await large;
  leased.release();
  leased.release(); // twice is harmless
  assert.equal(bodyBudgetAvailable(), whole);
});

Deno.test("a reservation that waits too long is 503 with Retry-After, and those behind it go on", async () => {
  const all = await reserveBody(BODY_BUDGET_BYTES, 0);
  const refused = reserveBody(MiB, 0, 20);
  const behind = reserveBody(MiB, 0, 2_000);
  await assert.rejects(refused, (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 503);
    assert.equal(error.code, "SERVICE_UNAVAILABLE");
    assert.equal(error.headers["Retry-After"], "1");
    return true;
  });
  all.release();
  (await behind).release();
  assert.equal(bodyBudgetAvailable(), BODY_BUDGET_BYTES);
});

Deno.test("a reservation larger than the budget is cut to the budget instead of waiting forever", async () => {
  const huge = await reserveBody(10 * BODY_BUDGET_BYTES, 0, 100);
  assert.equal(bodyBudgetAvailable(), 0);
  huge.release();
  assert.equal(bodyBudgetAvailable(), BODY_BUDGET_BYTES);
});

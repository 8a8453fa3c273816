/// <reference lib="dom" />
// The dashboard (/dashboard on the served functions) in a real browser: jobs created through the
// API appear, a worker's progress shows without a reload, pause and delete from the page reach the
// API, a refused move shows what is allowed, a failed task's error shows with its code and
// category, a user never sees another user's job, the service's operations view works; axe-core
// on every view and screenshots of each into .test-results/screenshots.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { JobServiceClient, JobServiceError } from "../../../client/job_service.ts";
import { Worker } from "../../../examples/worker.ts";
import {
  clientWith,
  newUserId,
  serviceToken,
  serviceUrl,
  token,
  userToken,
} from "../helpers/service.ts";
import { isolateClaims } from "../helpers/jobs.ts";
import { projectHost } from "../helpers/project_host.ts";
import { assertAccessible, assertFitsWidth, browserTest, screenshot } from "../helpers/browser.ts";

const RUN = crypto.randomUUID().slice(0, 6);

async function typedClient(bearer: string): Promise<JobServiceClient> {
  return new JobServiceClient(await clientWith(bearer));
}
const asUser = async (id: string) => await typedClient(await userToken(id));
const asService = async () => await typedClient(await serviceToken());

async function openDashboard(page: Page): Promise<void> {
  await page.goto(`${await serviceUrl()}/dashboard`);
  await page.getByRole("heading", { name: "Sign in", level: 1 }).waitFor();
}

/** The local development sign-in, by keyboard: type the user id and press Enter. */
async function signInAsUser(page: Page, userId: string): Promise<void> {
  await openDashboard(page);
  const field = page.getByLabel("User id");
  await field.fill(userId);
  await field.press("Enter");
  await page.getByRole("heading", { name: "Jobs", level: 1 }).waitFor();
}

async function signInAsService(page: Page): Promise<void> {
  await openDashboard(page);
  await page.getByLabel("the service (every job, operations)").check();
  await page.getByRole("button", { name: "Sign in" }).first().click();
  await page.getByRole("heading", { name: "Jobs", level: 1 }).waitFor();
}

function row(page: Page, jobId: string) {
  return page.locator(`tr[data-job-id="${jobId}"]`);
}

async function progressOf(page: Page, scope = page.locator("main")): Promise<number> {
  return Number(await scope.getByRole("progressbar").first().getAttribute("aria-valuenow"));
}

/** Confirms the open dialog by keyboard: the focus starts on "Keep as it is"; Tab, then Enter. */
async function confirmByKeyboard(page: Page): Promise<void> {
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  assert.equal(
    await page.evaluate(() => document.activeElement?.textContent),
    "Keep as it is",
    "the safe answer has the focus",
  );
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await dialog.waitFor({ state: "hidden" });
}

browserTest(
  "dashboard: a user sees the jobs created through the API, never another user's",
  async ({ page }) => {
    const alice = newUserId();
    const bob = newUserId();
    const api = await asUser(alice);
    const mine = [];
    for (let i = 0; i < 3; i++) {
      mine.push(
        await api.createJob({
          product_id: `list-${RUN}`,
          sending_group_id: `group-${i}`,
          start: false,
          tasks: [{ payload: { i } }],
        }),
      );
    }
    const theirs = await (await asUser(bob)).createJob({
      product_id: `list-${RUN}`,
      sending_group_id: "bob-group",
      tasks: [{ payload: {} }],
    });

    await openDashboard(page);
    await assertAccessible(page, "sign-in");
    await screenshot(page, "sign-in");
    await signInAsUser(page, alice);
    for (const job of mine) {
      await row(page, job.id).waitFor();
      assert.match(await row(page, job.id).innerText(), /pending/);
    }
    assert.equal(await row(page, theirs.id).count(), 0, "another user's job is not listed");
    assert.equal(await page.locator("tbody tr").count(), 3, "exactly the user's jobs");
    await assertAccessible(page, "jobs list");
    await screenshot(page, "jobs-list");

    // filters: one sending group, then a product nobody has (the empty state)
    await page.getByLabel("Sending group").fill("group-1");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 1);
    assert.equal(await row(page, mine[1].id).count(), 1);
    assert.match(page.url(), /group=group-1/);
    await page.getByLabel("Sending group").fill("");
    await page.getByLabel("Product").fill(`nothing-${RUN}`);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.getByText("No jobs match these filters.").waitFor();
    await assertAccessible(page, "jobs list, empty");
    await screenshot(page, "jobs-list-empty");

    // pages of 20 with listJobs' cursor: 21 jobs are a full page and one older job
    const paged = [];
    for (let i = 0; i < 21; i++) {
      paged.push(
        await api.createJob({ product_id: `page-${RUN}`, sending_group_id: "g", start: false }),
      );
    }
    await page.getByLabel("Product").fill(`page-${RUN}`);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await row(page, paged[20].id).waitFor();
    assert.equal(await page.locator("tbody tr").count(), 20);
    assert.equal(await row(page, paged[0].id).count(), 0, "the oldest is on the next page");
    await page.getByRole("button", { name: "Older jobs" }).click();
    await row(page, paged[0].id).waitFor();
    assert.equal(await page.locator("tbody tr").count(), 1);
    assert.equal(await page.getByRole("button", { name: "Older jobs" }).isDisabled(), true);
    await page.getByText("Page 2").waitFor();
    await page.getByRole("button", { name: "Newer jobs" }).click();
    await row(page, paged[20].id).waitFor();
    assert.equal(await page.locator("tbody tr").count(), 20);

    // another user's job by its address: not found, nothing of it shown
    await page.goto(`${await serviceUrl()}/dashboard/#/jobs/${theirs.id}`);
    await page.getByText("This job does not exist (any more), or it is not yours.").waitFor();
    assert.ok(!(await page.locator("main").innerText()).includes("bob-group"));
  },
);

browserTest(
  "dashboard: a worker runs and the progress bar reaches 100 % without a reload",
  async ({ page }) => {
    const alice = newUserId();
    const job = await (await asUser(alice)).createJob({
      product_id: `progress-${RUN}`,
      sending_group_id: "g",
      max_parallel_tasks: 2,
      tasks: Array.from({ length: 12 }, (_, i) => ({ payload: { i } })),
    });
    await isolateClaims([job.id]);
    await signInAsUser(page, alice);
    await row(page, job.id).waitFor();
    assert.equal(await progressOf(page, row(page, job.id)), 0);
    await page.evaluate(() => ((globalThis as unknown as { marker: string }).marker = "same page"));

    // the first half of the tasks end at once, the second half when the test lets them
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const worker = new Worker({
      url: await serviceUrl(),
      serviceKey: await serviceToken(),
      workerId: `dashboard-${RUN}`,
      concurrency: 2,
      idleMs: 50,
      handler: async (task) => {
        if ((task.payload as { i: number }).i >= 6) await held;
        return { sent: true };
      },
    });
    const running = worker.start();
    try {
      await page.waitForFunction(
        (id) =>
          document.querySelector(`tr[data-job-id="${id}"] [role=progressbar]`)
            ?.getAttribute("aria-valuenow") === "50",
        job.id,
      );
      assert.match(await row(page, job.id).innerText(), /6 of 12 tasks ended, 2 running/);
      release();
      await page.waitForFunction(
        (id) =>
          document.querySelector(`tr[data-job-id="${id}"] [role=progressbar]`)
            ?.getAttribute("aria-valuenow") === "100",
        job.id,
      );
    } finally {
      release();
      await worker.stop();
      await running;
    }
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { marker?: string }).marker),
      "same page",
      "no reload",
    );
    await page.waitForFunction(
      (id) =>
        document.querySelector(`tr[data-job-id="${id}"] .status`)?.textContent === "completed",
      job.id,
    );
    await screenshot(page, "jobs-list-progress");
  },
);

browserTest(
  "dashboard: pause from the page; a move the job no longer allows shows its allowed list",
  async ({ page }) => {
    const alice = newUserId();
    const api = await asUser(alice);
    const job = await api.createJob({
      product_id: `pause-${RUN}`,
      sending_group_id: "g",
      tasks: [{ payload: {} }, { payload: {} }],
    });
    await signInAsUser(page, alice);
    // open the job by keyboard
    await row(page, job.id).getByRole("link").focus();
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: `pause-${RUN} / g`, level: 1 }).waitFor();
    await assertAccessible(page, "job");
    await screenshot(page, "job");

    const actions = page.getByRole("group", { name: "Job actions" });
    assert.deepEqual(await actions.getByRole("button").allInnerTexts(), [
      "Pause",
      "Cancel",
      "Delete",
    ]);
    await actions.getByRole("button", { name: "Pause" }).focus();
    await page.keyboard.press("Enter");
    await assertAccessible(page, "confirmation dialog");
    await screenshot(page, "job-confirm");
    await confirmByKeyboard(page);
    await page.getByText("Pause: the job is paused now.").waitFor();
    assert.equal((await api.getJob({ job_id: job.id })).status, "paused", "the API reports paused");
    await page.waitForFunction(() =>
      [...document.querySelectorAll("[data-action]")].map((b) => b.textContent).join() ===
        "Resume,Cancel,Delete"
    );

    // the job moves on while the confirmation is open: the service refuses, the page says why
    await actions.getByRole("button", { name: "Resume" }).click();
    await page.getByRole("dialog").waitFor();
    await api.updateBatchJob({ job_id: job.id, status: "queued" });
    await page.getByRole("dialog").getByRole("button", { name: "Resume" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    const said = await alert.innerText();
    assert.match(said, /INVALID_TRANSITION/);
    assert.match(said, /Allowed from queued now: running, paused, cancelled, cancelling\./);
    await assertAccessible(page, "job, refused move");
    await screenshot(page, "job-409");
  },
);

browserTest(
  "dashboard: a failed task's error shows with its code and category; delete from the page",
  async ({ page }) => {
    const alice = newUserId();
    const api = await asUser(alice);
    const job = await api.createJob({
      product_id: `fail-${RUN}`,
      sending_group_id: "g",
      retry_config: { max_attempts: 1, retry_interval: 0, retry_on_errors: [] },
      tasks: [{ payload: { to: "nobody@example.com" } }, { payload: { to: "a@example.com" } }],
    });
    const service = await asService();
    const { tasks } = await service.claimTasks({ worker_id: `w-${RUN}`, limit: 1, job_id: job.id });
    assert.equal(tasks.length, 1);
    const failed = await service.failTask({
      worker_id: `w-${RUN}`,
      task_id: tasks[0].task_id,
      error: { code: "INVALID_RECIPIENT", message: "nobody@example.com does not exist" },
    });
    assert.equal(failed.status, "failed");

    await signInAsUser(page, alice);
    await page.goto(`${await serviceUrl()}/dashboard/#/jobs/${job.id}`);
    const errors = page.getByRole("table", { name: "The job's latest errors, newest first" });
    await errors.waitFor();
    const cells = await errors.locator("tbody tr").first().locator("td").allInnerTexts();
    assert.equal(cells[1], "INVALID_RECIPIENT");
    assert.equal(cells[2], "validation");
    assert.equal(cells[4], `#${tasks[0].task_id}`);
    assert.equal(cells[5], "nobody@example.com does not exist");
    const last = await page.locator("section", { hasText: "Last error" }).innerText();
    assert.match(last, /INVALID_RECIPIENT/);
    assert.match(last, /validation/);
    const events = await page.locator("section", { hasText: "Events" }).locator("li")
      .allInnerTexts();
    assert.ok(events.length > 0, "the events timeline is shown");
    await assertAccessible(page, "job with errors");
    await screenshot(page, "job-errors");

    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    await page.getByRole("heading", { name: "Jobs", level: 1 }).waitFor();
    await page.getByText(`Deleted job ${job.id}`).waitFor();
    await page.getByText("No jobs yet.").waitFor();
    assert.equal(await row(page, job.id).count(), 0, "gone from the list");
    await assert.rejects(
      api.getJob({ job_id: job.id }),
      (e) => e instanceof JobServiceError && e.status === 404 && e.code === "JOB_NOT_FOUND",
      "gone from the API",
    );
  },
);

browserTest(
  "dashboard: the service sees every job, statistics, group rate limits and quotas",
  async ({ page }) => {
    const alice = newUserId();
    const group = `rl-${RUN}`;
    const job = await (await asUser(alice)).createJob({
      product_id: `ops-${RUN}`,
      sending_group_id: group,
      start: false,
      tasks: [{ payload: {} }],
    });
    await signInAsService(page);
    await page.getByLabel("Owner (user id)").fill(alice);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await row(page, job.id).waitFor();
    assert.match(await row(page, job.id).innerText(), new RegExp(alice.slice(0, 8)));
    await assertAccessible(page, "jobs list, service");
    await screenshot(page, "jobs-list-service");

    await page.getByRole("link", { name: "Operations" }).click();
    await page.getByRole("heading", { name: "Operations", level: 1 }).waitFor();
    await page.getByRole("heading", { name: "Queue" }).waitFor();
    const chart = page.getByRole("img", { name: /Tasks ended per minute/ });
    assert.match(await chart.getAttribute("aria-label") ?? "", /last 1 min: [\d.,]+ tasks\/min/);
    const stats = await (await asService()).getStats({});
    const pending = await page.locator(".counter-pending .count").first().innerText();
    assert.ok(Number(pending.replace(/,/g, "")) >= 1, "queue depth shows the pending job");
    assert.ok(stats.jobs.by_status.pending >= 1);
    assert.match(await page.locator("section", { hasText: "Maintenance" }).innerText(), /Running/);
    for (const category of ["transient", "validation", "internal"]) {
      assert.match(
        await page.locator("section", { hasText: "Errors by class" }).innerText(),
        new RegExp(category),
      );
    }

    // sending-group rate limit: set it from the page, the API shows it on the group's job
    await page.getByLabel("Sending group", { exact: true }).fill(group);
    await page.getByLabel("Starts per second").fill("2.5");
    await page.getByRole("button", { name: "Save limit" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Save limit" }).click();
    await page.getByText(`Group ${group}: 2.5 starts per second, burst 3.`).waitFor();
    const seen = await (await asUser(alice)).getJob({ job_id: job.id });
    assert.equal(seen.sending_group_rate_limit?.max_per_second, 2.5);
    await page.reload();
    await page.getByLabel("Sending group", { exact: true }).fill(group);
    await page.getByRole("button", { name: "Show current limit" }).click();
    await page.getByText(`Group ${group}: 2.5 starts per second, burst 3.`).waitFor();

    // user quotas: saved from the page (after its confirmation), read back through the API and by
    // the page's look-up
    await page.getByLabel("User id", { exact: true }).fill(alice);
    await page.getByLabel("Active jobs", { exact: true }).fill("7");
    await page.getByLabel("Highest priority", { exact: true }).fill("none");
    await page.getByRole("button", { name: "Save quotas" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Save quotas" }).click();
    const quotas = page.locator("section", { hasText: "User quotas" }).locator("dl");
    await quotas.waitFor();
    assert.match(await quotas.innerText(), /Active jobs\s+7/);
    assert.deepEqual(await (await asService()).setUserLimits({ user_id: alice }), {
      user_id: alice,
      max_priority: null,
      max_active_jobs: 7,
      max_pending_tasks: null,
    });
    await page.reload();
    await page.getByLabel("User id", { exact: true }).fill(alice);
    await page.getByRole("button", { name: "Show current quotas" }).click();
    await quotas.waitFor();
    assert.match(await quotas.innerText(), /Active jobs\s+7/);
    assert.match(await quotas.innerText(), /Highest priority\s+no limit/);
    await assertAccessible(page, "operations");
    await screenshot(page, "operations");
  },
);

browserTest(
  "dashboard: readable at a phone's width",
  async ({ page }) => {
    const alice = newUserId();
    const job = await (await asUser(alice)).createJob({
      product_id: `phone-${RUN}-with-a-rather-long-product-name`,
      sending_group_id: "a-sending-group-with-a-long-name",
      tasks: [{ payload: {} }],
    });
    await signInAsUser(page, alice);
    await row(page, job.id).waitFor();
    await assertFitsWidth(page, "jobs list");
    await assertAccessible(page, "jobs list, phone");
    await screenshot(page, "phone-jobs-list");
    await row(page, job.id).getByRole("link").click();
    await page.getByRole("heading", { name: /phone-/, level: 1 }).waitFor();
    await page.locator("section", { hasText: "Events" }).waitFor();
    await assertFitsWidth(page, "job");
    await assertAccessible(page, "job, phone");
    await screenshot(page, "phone-job");
  },
  { viewport: { width: 390, height: 844 } },
);

browserTest(
  "dashboard: a token the service refuses is an error on the sign-in page",
  async ({ page }) => {
    await openDashboard(page);
    const forged = await token({ role: "authenticated", sub: newUserId(), secret: "x".repeat(40) });
    await page.getByLabel("Token", { exact: true }).fill(forged);
    await page.getByLabel("Token", { exact: true }).press("Enter");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert.match(await alert.innerText(), /Sign-in failed: UNAUTHORIZED/);
    await page.getByLabel("Token", { exact: true }).fill("not a token");
    await page.getByLabel("Token", { exact: true }).press("Enter");
    await page.getByText("This is neither a JWT nor a secret key.").waitFor();
    await assertAccessible(page, "sign-in, refused");
    await screenshot(page, "sign-in-refused");
  },
);

browserTest(
  "dashboard: the static build, on another host, signs in with Supabase Auth",
  async ({ page }) => {
    const alice = { id: newUserId(), email: `alice-${RUN}@example.com`, password: "correct horse" };
    const project = await projectHost(alice);
    const out = await Deno.makeTempDir({ prefix: "dashboard-build-" });
    const build = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "-q",
        "dashboard:build",
        "--out",
        out,
        "--url",
        project.url,
        "--key",
        "sb_publishable_test",
      ],
      cwd: new URL("../../../", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(build.success, new TextDecoder().decode(build.stderr));
    const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
    assert.deepEqual(config, {
      supabase_url: project.url,
      publishable_key: "sb_publishable_test",
      dev_sign_in: false,
      realtime: null,
    });
    // any static host: here a file server on a port of its own, so every call is cross-origin
    const types: Record<string, string> = {
      html: "text/html",
      js: "text/javascript",
      css: "text/css",
    };
    const host = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
      const name = new URL(req.url).pathname.slice(1) || "index.html";
      try {
        const body = await Deno.readFile(`${out}/${name.replace(/[^\w.]/g, "")}`);
        return new Response(body, {
          headers: { "content-type": types[name.split(".").pop()!] ?? "application/json" },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    });
    try {
      const job = await (await asUser(alice.id)).createJob({
        product_id: `static-${RUN}`,
        sending_group_id: "g",
      });
      await page.goto(`http://127.0.0.1:${host.addr.port}/`);
      await page.getByRole("heading", { name: "Sign in", level: 1 }).waitFor();
      assert.equal(await page.getByText("Local development sign-in").count(), 0, "no dev sign-in");
      await page.getByLabel("Email").fill(alice.email);
      await page.getByLabel("Password").fill("wrong");
      await page.getByLabel("Password").press("Enter");
      await page.getByText("Sign-in failed: Invalid login credentials").waitFor();
      await page.getByLabel("Password").fill(alice.password);
      await page.getByLabel("Password").press("Enter");
      await row(page, job.id).waitFor();
      assert.match(await page.locator("#nav").innerText(), new RegExp(`User ${alice.id}`));
      // supabase-js keeps the session: a reload stays signed in
      await page.reload();
      await row(page, job.id).waitFor();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in", level: 1 }).waitFor();
      await assertAccessible(page, "sign-in, project");
      await screenshot(page, "sign-in-project");
    } finally {
      await host.shutdown();
      await project.close();
      await Deno.remove(out, { recursive: true });
    }
  },
);

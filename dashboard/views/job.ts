/// <reference lib="dom" />
// One job: counters, phase, progress, limits, retry policy, last error, its error rows and events,
// and the actions its status allows (with a confirmation; a 409 is shown with what is allowed).
import { JobServiceError } from "../../client/job_service.ts";
import type {
  JobErrorRow,
  JobEventRow,
  JobWithHistory,
  RateLimitView,
} from "../../client/job_service.ts";
import { type Child, dateTime, duration, fill, h, num } from "../dom.ts";
import { actionsFor, type JobAction } from "../job_actions.ts";
import { keepLive } from "../live.ts";
import type { Dispose, ViewContext } from "../view.ts";
import {
  emptyState,
  errorAlert,
  facts,
  progressBar,
  statusBadge,
  updateProgressBar,
} from "../widgets.ts";

export function renderJob(ctx: ViewContext, jobId: string): Dispose {
  const title = h("h1", { tabindex: -1 }, "Job");
  const header = h("div", { class: "job-header" });
  const actionBar = h("div", { class: "actions", role: "group", "aria-label": "Job actions" });
  const outcome = h("div", { class: "outcome" });
  const body = h("div", { class: "job-body" }, h("p", { class: "muted" }, "Loading the job…"));
  let bar: HTMLElement | undefined;
  let shownActions = "";
  let job: JobWithHistory | undefined;
  let gone = false;

  fill(
    ctx.main,
    h("p", null, h("a", { href: "#/jobs" }, "← All jobs")),
    title,
    header,
    actionBar,
    outcome,
    body,
  );

  const act = async (action: JobAction) => {
    if (!job) return;
    if (!await ctx.confirm(action.confirm, action.label, action.danger)) return;
    try {
      const said = await action.run(ctx.session.jobs, job);
      if (action.id === "delete" || action.id === "force-delete") {
        ctx.announce(said);
        ctx.navigate("#/jobs");
        return;
      }
      fill(outcome, h("p", { class: "notice", role: "status" }, said));
      await refresh();
    } catch (error) {
      if (ctx.handled(error)) return;
      fill(outcome, errorAlert(error, `${action.label} was refused`));
      await refresh();
    }
  };

  let asked = 0;
  let shown = "";
  const refresh = async () => {
    if (gone) return;
    const mine = ++asked;
    let answer: JobWithHistory;
    try {
      answer = await ctx.session.jobs.getJob({ job_id: jobId, include: ["errors", "events"] });
    } catch (error) {
      if (mine !== asked || ctx.handled(error)) return;
      if (error instanceof JobServiceError && error.code === "JOB_NOT_FOUND") {
        gone = true;
        fill(header);
        fill(actionBar);
        fill(
          body,
          emptyState(
            "This job does not exist (any more), or it is not yours.",
            h("a", { href: "#/jobs" }, "Back to the jobs"),
          ),
        );
        return;
      }
      shown = "";
      fill(body, errorAlert(error, "The job could not be loaded"));
      return;
    }
    // only the latest answer is shown, and only when something changed (the focus, a selection
    // and a screen reader's place stay where they are otherwise)
    const snapshot = JSON.stringify(answer);
    if (mine !== asked || snapshot === shown) return;
    shown = snapshot;
    job = answer;
    title.textContent = `${job.product_id} / ${job.sending_group_id}`;
    document.title = `${title.textContent} · Jobs`;
    fill(
      header,
      statusBadge(job.status),
      " ",
      h("code", null, job.id),
      " · phase ",
      h("strong", null, job.detailed_status.current_phase),
    );
    // the buttons are drawn again only when the choice changes, so that the focus stays put
    const actions = actionsFor(job);
    const key = actions.map((a) => a.id).join(",");
    if (key !== shownActions) {
      shownActions = key;
      fill(
        actionBar,
        actions.map((a) =>
          h("button", {
            type: "button",
            class: a.danger ? "danger" : "",
            "data-action": a.id,
            onclick: () => act(a),
          }, a.label)
        ),
      );
    }
    if (bar) updateProgressBar(bar, job);
    else bar = progressBar(job, "Progress of this job");
    fill(
      body,
      bar,
      section("Tasks", counters(job)),
      section("Status", statusFacts(job)),
      section("Limits and retry policy", limits(job)),
      section("Last error", lastError(job)),
      section("Errors", errorTable(job.errors ?? [])),
      section("Events", timeline(job.events ?? [])),
    );
  };

  return keepLive(refresh, ctx.session, ctx.config);
}

function section(title: string, ...content: Child[]): HTMLElement {
  return h("section", { class: "panel" }, h("h2", null, title), content);
}

function counters(job: JobWithHistory): HTMLElement {
  const t = job.tasks;
  return h(
    "ul",
    { class: "counters" },
    (["total", "pending", "running", "succeeded", "failed", "cancelled"] as const).map((k) =>
      h("li", { class: `counter counter-${k}` }, h("span", { class: "count" }, num(t[k])), k)
    ),
  );
}

function statusFacts(job: JobWithHistory): HTMLElement {
  const d = job.detailed_status;
  return facts([
    ["Status", statusBadge(job.status)],
    ["Phase", d.current_phase],
    ["Progress", `${num(d.progress_percentage)} %`],
    ["Active tasks", num(d.active_tasks)],
    ["Errors recorded", num(d.error_count)],
    ["Attempt", `${job.attempt} of ${job.retry_config.max_attempts}`],
    ["Next attempt", dateTime(job.next_attempt_at)],
    ["Owner", h("code", null, job.user_id)],
    ["Created", dateTime(job.created_at)],
    ["Started", dateTime(job.started_at)],
    ["Finished", dateTime(job.finished_at)],
    ["Updated", dateTime(job.updated_at)],
  ]);
}

function rate(limit: RateLimitView | null): string {
  return limit
    ? `${num(limit.max_per_second)}/s, burst ${num(limit.burst)} (${
      num(limit.available)
    } available now)`
    : "none";
}

function limits(job: JobWithHistory): HTMLElement {
  const r = job.retry_config;
  const budget = job.resource_limits;
  return facts([
    ["Priority", num(job.priority)],
    ["Parallel tasks", `at most ${num(job.max_parallel_tasks)}`],
    [
      "Resource budget",
      budget ? `${num(budget.max_memory)} MiB, ${num(budget.max_cpu)} CPU` : "none",
    ],
    ["Job rate limit", rate(job.rate_limit)],
    ["Sending-group rate limit", rate(job.sending_group_rate_limit)],
    ["Attempts", `at most ${num(r.max_attempts)}`],
    [
      "Retry interval",
      `${duration(r.retry_interval)}, ${r.backoff}` +
      (r.backoff === "exponential" ? ` (at most ${duration(r.max_retry_interval)})` : ""),
    ],
    [
      "Retried on",
      r.retry_on_errors.length ? r.retry_on_errors.map((c) => h("code", null, c, " ")) : "no error",
    ],
  ]);
}

function lastError(job: JobWithHistory): HTMLElement {
  const e = job.last_error;
  if (!e) return h("p", { class: "muted" }, "No error so far.");
  return facts([
    ["Code", h("code", null, e.code)],
    ["Category", e.category],
    ["Message", e.message],
    ["At", dateTime(e.at)],
  ]);
}

function errorTable(errors: JobErrorRow[]): HTMLElement {
  if (errors.length === 0) return h("p", { class: "muted" }, "No errors recorded.");
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "errors" },
      h("caption", { class: "visually-hidden" }, "The job's latest errors, newest first"),
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["At", "Code", "Category", "Attempt", "Task", "Message"].map((c) =>
            h("th", { scope: "col" }, c)
          ),
        ),
      ),
      h(
        "tbody",
        null,
        errors.map((e) =>
          h(
            "tr",
            null,
            h("td", { "data-label": "At" }, dateTime(e.created_at)),
            h("td", { "data-label": "Code" }, h("code", null, e.code)),
            h("td", { "data-label": "Category" }, e.category),
            h("td", { "data-label": "Attempt" }, num(e.attempt)),
            h("td", { "data-label": "Task" }, e.task_id === null ? "job" : `#${e.task_id}`),
            h("td", { "data-label": "Message", class: "message" }, e.message),
          )
        ),
      ),
    ),
  );
}

function timeline(events: JobEventRow[]): HTMLElement {
  if (events.length === 0) return h("p", { class: "muted" }, "No events recorded.");
  return h(
    "ol",
    { class: "timeline" },
    events.map((e) => {
      const move = e.from_status || e.to_status
        ? [" ", h("span", { class: "move" }, `${e.from_status ?? "—"} → ${e.to_status ?? "—"}`)]
        : null;
      const detail = Object.keys(e.details).length ? JSON.stringify(e.details) : "";
      return h(
        "li",
        null,
        h("time", { datetime: e.created_at }, dateTime(e.created_at)),
        " ",
        h("strong", null, e.type),
        move,
        h(
          "div",
          { class: "muted" },
          `by ${e.actor.role}${e.actor.user_id ? ` ${e.actor.user_id}` : ""}`,
          detail ? ` · ${detail}` : "",
        ),
      );
    }),
  );
}

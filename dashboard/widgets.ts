/// <reference lib="dom" />
// Pieces several views show: a job's status, its progress bar, an error from the service, and a
// list of labelled values.
import { JobServiceError } from "../client/job_service.ts";
import type { BatchJob } from "../client/job_service.ts";
import { type Child, h, num, setAttr, setText } from "./dom.ts";

export function statusBadge(status: string): HTMLElement {
  return h("span", { class: `status status-${status}` }, status);
}

export function updateStatusBadge(el: Element, status: string): void {
  setAttr(el, "class", `status status-${status}`);
  setText(el, status);
}

const SEGMENTS = ["succeeded", "failed", "cancelled", "running"] as const;

/**
 * A progress bar (role progressbar, aria-valuenow = the job's progress_percentage) with the ended
 * and running tasks as coloured segments, and a line of text under it.
 */
export function progressBar(job: BatchJob, label: string): HTMLElement {
  const bar = h(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-label": label,
      "aria-valuemin": 0,
      "aria-valuemax": 100,
    },
    SEGMENTS.map((s) => h("span", { class: `segment segment-${s}` })),
  );
  const wrapper = h(
    "div",
    { class: "progress-wrapper" },
    bar,
    h("div", { class: "progress-text" }),
  );
  updateProgressBar(wrapper, job);
  return wrapper;
}

export function updateProgressBar(wrapper: Element, job: BatchJob): void {
  const bar = wrapper.querySelector(".progress")!;
  const percent = job.detailed_status.progress_percentage;
  const t = job.tasks;
  const ended = t.succeeded + t.failed + t.cancelled;
  const summary = t.total > 0
    ? `${num(percent)} %: ${num(ended)} of ${num(t.total)} tasks ended, ${num(t.running)} running`
    : `${num(percent)} % (no tasks)`;
  setAttr(bar, "aria-valuenow", String(percent));
  setAttr(bar, "aria-valuetext", summary);
  for (const s of SEGMENTS) {
    const share = t.total > 0 ? (t[s] / t.total) * 100 : (s === "succeeded" ? percent : 0);
    (bar.querySelector(`.segment-${s}`) as HTMLElement).style.width = `${share}%`;
  }
  const failed = t.failed > 0 ? `, ${num(t.failed)} failed` : "";
  setText(wrapper.querySelector(".progress-text")!, `${summary}${failed}`);
}

/** A service error as the person should read it: code, message, what the details say. */
export function errorAlert(error: unknown, context?: string): HTMLElement {
  if (!(error instanceof JobServiceError)) {
    const message = error instanceof Error ? error.message : String(error);
    return h("div", { class: "alert", role: "alert" }, context ? `${context}: ` : "", message);
  }
  return h(
    "div",
    { class: "alert", role: "alert" },
    h("p", null, context ? `${context}: ` : "", h("code", null, error.code), " ", error.message),
    detailsOf(error),
    h(
      "p",
      { class: "muted" },
      error.status ? `HTTP ${error.status}` : "no answer",
      error.request_id ? ` · request id ${error.request_id}` : "",
    ),
  );
}

function detailsOf(error: JobServiceError): Child {
  const details = error.details as Record<string, unknown> | unknown[] | undefined;
  if (error.code === "INVALID_TRANSITION" && details && !Array.isArray(details)) {
    const allowed = (details.allowed as string[] | undefined) ?? [];
    return h(
      "p",
      { class: "allowed" },
      "Allowed from ",
      h("strong", null, String(details.from)),
      " now: ",
      allowed.length > 0 ? allowed.join(", ") : "none (a final status)",
      ".",
    );
  }
  if (Array.isArray(details)) {
    return h(
      "ul",
      null,
      details.map((d) => {
        const issue = d as { path?: string; message?: string };
        return h("li", null, issue.path ? h("code", null, issue.path) : "", " ", issue.message);
      }),
    );
  }
  if (details && typeof details === "object") {
    return h("p", { class: "muted" }, JSON.stringify(details));
  }
  return null;
}

/** A definition list of label → value. */
export function facts(rows: [string, Child][]): HTMLElement {
  return h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

export function emptyState(text: string, hint?: Child): HTMLElement {
  return h(
    "div",
    { class: "empty" },
    h("p", null, text),
    hint ? h("p", { class: "muted" }, hint) : null,
  );
}

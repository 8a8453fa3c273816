/// <reference lib="dom" />
// The jobs list: filters (status, product, sending group; the service also by user), a page of
// jobs newest first with live progress bars, and paging with listJobs' cursor.
import { JOB_STATUSES } from "../../supabase/functions/_shared/job_statuses.ts";
import type { BatchJob, JobList, JobStatus } from "../../client/job_service.ts";
import { age, dateTime, fill, h, num, setText, shortId } from "../dom.ts";
import { keepLive } from "../live.ts";
import type { Dispose, ViewContext } from "../view.ts";
import {
  emptyState,
  errorAlert,
  progressBar,
  statusBadge,
  updateProgressBar,
  updateStatusBadge,
} from "../widgets.ts";

const PAGE_SIZE = 20;

export interface JobFilters {
  status: JobStatus[];
  product: string;
  group: string;
  user: string;
}

export function filtersFrom(query: URLSearchParams): JobFilters {
  const statuses = (query.get("status") ?? "").split(",").filter(Boolean);
  return {
    status: JOB_STATUSES.filter((s) => statuses.includes(s)),
    product: query.get("product") ?? "",
    group: query.get("group") ?? "",
    user: query.get("user") ?? "",
  };
}

function hashOf(filters: JobFilters): string {
  const query = new URLSearchParams();
  if (filters.status.length) query.set("status", filters.status.join(","));
  if (filters.product) query.set("product", filters.product);
  if (filters.group) query.set("group", filters.group);
  if (filters.user) query.set("user", filters.user);
  const q = query.toString();
  return q ? `#/jobs?${q}` : "#/jobs";
}

interface Row {
  tr: HTMLTableRowElement;
  update(job: BatchJob): void;
}

export function renderJobs(ctx: ViewContext, filters: JobFilters): Dispose {
  const service = ctx.session.identity.kind === "service";
  const cursors: (string | undefined)[] = [undefined];
  const rows = new Map<string, Row>();

  const form = filterForm(ctx, filters, service);
  const message = h("div", { class: "list-state" }, h("p", { class: "muted" }, "Loading jobs…"));
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "jobs", hidden: true },
    h("caption", { class: "visually-hidden" }, "Jobs, newest first"),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { scope: "col" }, "Job"),
        h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col" }, "Progress"),
        h("th", { scope: "col" }, "Priority"),
        h("th", { scope: "col" }, "Age"),
        service ? h("th", { scope: "col" }, "Owner") : null,
      ),
    ),
    tbody,
  );
  const newer = h("button", { type: "button", class: "secondary", disabled: true }, "Newer jobs");
  const older = h("button", { type: "button", class: "secondary", disabled: true }, "Older jobs");
  const pageLabel = h("span", { class: "muted", "aria-live": "polite" });
  let nextCursor: string | null = null;

  fill(
    ctx.main,
    h("h1", { tabindex: -1 }, "Jobs"),
    form,
    message,
    h("div", { class: "table-scroll" }, table),
    h("nav", { class: "pager", "aria-label": "Pages of jobs" }, newer, pageLabel, older),
  );

  let asked = 0;
  const refresh = async () => {
    const mine = ++asked;
    let page: JobList;
    try {
      page = await ctx.session.jobs.listJobs({
        limit: PAGE_SIZE,
        cursor: cursors[cursors.length - 1],
        ...(filters.status.length ? { status: filters.status } : {}),
        ...(filters.product ? { product_id: filters.product } : {}),
        ...(filters.group ? { sending_group_id: filters.group } : {}),
        ...(service && filters.user ? { user_id: filters.user } : {}),
      });
    } catch (error) {
      if (mine !== asked || ctx.handled(error)) return;
      table.hidden = true;
      fill(message, errorAlert(error, "The jobs could not be loaded"));
      return;
    }
    if (mine !== asked) return; // a later request (another page) answers instead
    nextCursor = page.next_cursor;
    older.disabled = nextCursor === null;
    newer.disabled = cursors.length === 1;
    setText(pageLabel, `Page ${cursors.length}`);
    if (page.jobs.length === 0) {
      table.hidden = true;
      const filtered = filters.status.length || filters.product || filters.group || filters.user;
      fill(
        message,
        emptyState(
          cursors.length > 1
            ? "No older jobs."
            : filtered
            ? "No jobs match these filters."
            : "No jobs yet.",
          filtered
            ? "Clear the filters to see every job."
            : "Jobs created with createJob appear here.",
        ),
      );
      return;
    }
    message.replaceChildren();
    table.hidden = false;
    showPage(page.jobs);
  };

  const showPage = (jobs: BatchJob[]) => {
    const seen = new Set<string>();
    let previous: Element | null = null;
    for (const job of jobs) {
      seen.add(job.id);
      let row = rows.get(job.id);
      if (row) row.update(job);
      else rows.set(job.id, row = jobRow(job, service));
      // move a row only when it is out of place (moving a row takes the focus out of it)
      const expected: Element | null = previous
        ? previous.nextElementSibling
        : tbody.firstElementChild;
      if (expected !== row.tr) {
        if (previous) previous.after(row.tr);
        else tbody.prepend(row.tr);
      }
      previous = row.tr;
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
  };

  const turn = (to: "newer" | "older") => {
    if (to === "older" && nextCursor) cursors.push(nextCursor);
    if (to === "newer" && cursors.length > 1) cursors.pop();
    for (const row of rows.values()) row.tr.remove();
    rows.clear();
    refresh();
  };
  newer.addEventListener("click", () => turn("newer"));
  older.addEventListener("click", () => turn("older"));

  return keepLive(refresh, ctx.session, ctx.config);
}

function filterForm(ctx: ViewContext, filters: JobFilters, service: boolean): HTMLFormElement {
  const statusBoxes = JOB_STATUSES.map((s) =>
    h(
      "label",
      { class: "check" },
      h("input", {
        type: "checkbox",
        name: "status",
        value: s,
        checked: filters.status.includes(s),
      }),
      s,
    )
  );
  const text = (name: string, label: string, value: string, hint?: string) =>
    h(
      "div",
      { class: "field" },
      h("label", { for: `filter-${name}` }, label),
      h("input", {
        id: `filter-${name}`,
        name,
        value,
        autocomplete: "off",
        placeholder: hint ?? "any",
      }),
    );
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter jobs" },
    h("fieldset", { class: "statuses" }, h("legend", null, "Status"), statusBoxes),
    text("product", "Product", filters.product),
    text("group", "Sending group", filters.group),
    service ? text("user", "Owner (user id)", filters.user) : null,
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "submit" }, "Apply filters"),
      h("button", {
        type: "button",
        class: "secondary",
        onclick: () => ctx.navigate("#/jobs"),
      }, "Clear"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    ctx.navigate(hashOf({
      status: data.getAll("status") as JobStatus[],
      product: String(data.get("product") ?? "").trim(),
      group: String(data.get("group") ?? "").trim(),
      user: String(data.get("user") ?? "").trim(),
    }));
  });
  return form;
}

function jobRow(job: BatchJob, service: boolean): Row {
  const name = h("a", { href: `#/jobs/${job.id}` });
  const phase = h("span", { class: "muted" });
  const badge = statusBadge(job.status);
  const bar = progressBar(job, `Progress of job ${shortId(job.id)}`);
  const priority = h("td", { "data-label": "Priority" });
  const ageCell = h("td", { "data-label": "Age" });
  const tr = h(
    "tr",
    { "data-job-id": job.id },
    h(
      "td",
      { "data-label": "Job" },
      name,
      h("div", { class: "muted" }, h("code", null, shortId(job.id)), " · ", phase),
    ),
    h("td", { "data-label": "Status" }, badge),
    h("td", { "data-label": "Progress", class: "progress-cell" }, bar),
    priority,
    ageCell,
    service ? h("td", { "data-label": "Owner" }, h("code", null, shortId(job.user_id))) : null,
  );
  const update = (j: BatchJob) => {
    setText(name, `${j.product_id} / ${j.sending_group_id}`);
    setText(phase, j.detailed_status.current_phase);
    updateStatusBadge(badge, j.status);
    updateProgressBar(bar, j);
    setText(priority, num(j.priority));
    setText(ageCell, age(j.created_at));
    ageCell.title = dateTime(j.created_at);
  };
  update(job);
  return { tr, update };
}

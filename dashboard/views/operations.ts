/// <reference lib="dom" />
// For the service: getStats (queue depth, running tasks, throughput, errors by class, resources
// against limits, notifications, maintenance), sending-group rate limits and user quotas.
import { JobServiceError } from "../../client/job_service.ts";
import { JOB_STATUSES } from "../../supabase/functions/_shared/job_statuses.ts";
import type { GroupRateLimit, Stats, UserLimits } from "../../client/job_service.ts";
import { type Child, dateTime, fill, h, num, setText, shortId, svg } from "../dom.ts";
import { keepLive } from "../live.ts";
import type { Dispose, ViewContext } from "../view.ts";
import { errorAlert, facts } from "../widgets.ts";

export function renderOperations(ctx: ViewContext): Dispose {
  const stats = h("div", { class: "stats" }, h("p", { class: "muted" }, "Loading statistics…"));
  const asOf = h("p", { class: "muted" });
  fill(
    ctx.main,
    h("h1", { tabindex: -1 }, "Operations"),
    asOf,
    stats,
    h(
      "div",
      { class: "grid settings" },
      section("Sending-group rate limits", rateLimitForm(ctx)),
      section("User quotas", quotaForm(ctx)),
    ),
  );
  let shown = "";
  const refresh = async () => {
    try {
      const s = await ctx.session.jobs.getStats({});
      setText(asOf, `Statistics as of ${dateTime(s.generated_at)}.`);
      // drawn again only when a figure changed, so that the focus stays where it is
      const snapshot = JSON.stringify({ ...s, generated_at: null });
      if (snapshot === shown) return;
      shown = snapshot;
      fill(stats, statsPanels(s));
    } catch (error) {
      shown = "";
      if (!ctx.handled(error)) fill(stats, errorAlert(error, "The statistics could not be loaded"));
    }
  };
  return keepLive(refresh, ctx.session, ctx.config);
}

function section(title: string, ...content: Child[]): HTMLElement {
  return h("section", { class: "panel" }, h("h2", null, title), content);
}

function statsPanels(s: Stats): HTMLElement {
  return h(
    "div",
    { class: "grid" },
    section(
      "Queue",
      h(
        "ul",
        { class: "counters" },
        JOB_STATUSES.map((status) =>
          h(
            "li",
            { class: `counter counter-${status}` },
            h("span", { class: "count" }, num(s.jobs.by_status[status])),
            status,
          )
        ),
      ),
      facts([
        ["Active jobs", num(s.jobs.active)],
        [
          "Tasks waiting",
          `${num(s.tasks.pending)} (${num(s.tasks.due)} due, ${num(s.tasks.delayed)} delayed)`,
        ],
        ["Tasks running", `${num(s.tasks.running)} of ${num(s.tasks.capacity)} slots`],
      ]),
    ),
    section("Throughput", throughputChart(s)),
    section("Errors by class", errorClasses(s)),
    section("Resources", resources(s)),
    section("Notifications", generic(s.notifications)),
    section("Maintenance", generic(s.maintenance)),
  );
}

/** Tasks ended per minute, averaged over the last 1, 5 and 15 minutes: succeeded and failed. */
function throughputChart(s: Stats): HTMLElement {
  const windows = [
    ["1 min", s.throughput.last_1m, 1],
    ["5 min", s.throughput.last_5m, 5],
    ["15 min", s.throughput.last_15m, 15],
  ] as const;
  const rates = windows.map(([label, w, minutes]) => ({
    label,
    succeeded: w.succeeded / minutes,
    failed: w.failed / minutes,
    total: w.per_minute,
  }));
  const max = Math.max(1, ...rates.map((r) => r.total));
  const width = 300, height = 140, base = 110, barWidth = 60, scale = 90 / max;
  const summary = rates.map((r) => `last ${r.label}: ${num(r.total)} tasks/min`).join("; ");
  const chart = svg(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": `Tasks ended per minute, ${summary}`,
    },
    svg("line", { x1: 10, x2: width - 10, y1: base, y2: base, class: "axis" }),
    rates.map((r, i) => {
      const x = 30 + i * 90;
      const ok = r.succeeded * scale;
      const bad = r.failed * scale;
      return svg(
        "g",
        null,
        svg("rect", { x, y: base - ok, width: barWidth, height: ok, class: "bar-succeeded" }),
        svg("rect", { x, y: base - ok - bad, width: barWidth, height: bad, class: "bar-failed" }),
        svg("text", { x: x + barWidth / 2, y: base - ok - bad - 4, class: "value" }, num(r.total)),
        svg("text", { x: x + barWidth / 2, y: base + 18, class: "label" }, `last ${r.label}`),
      );
    }),
  );
  return h(
    "figure",
    null,
    chart,
    h(
      "figcaption",
      { class: "muted" },
      "Tasks ended per minute (",
      h("span", { class: "key key-succeeded" }, "succeeded"),
      ", ",
      h("span", { class: "key key-failed" }, "failed for good"),
      ").",
    ),
  );
}

function errorClasses(s: Stats): Child[] {
  const e = s.errors;
  return [
    h("p", null, `${num(e.total)} errors in the last ${num(e.window_minutes)} minutes.`),
    h(
      "ul",
      { class: "counters" },
      Object.entries(e.by_category).map(([category, n]) =>
        h("li", { class: "counter" }, h("span", { class: "count" }, num(n)), category)
      ),
    ),
    e.top_codes.length
      ? h(
        "table",
        { class: "compact" },
        h("caption", null, "Most frequent codes"),
        h(
          "thead",
          null,
          h("tr", null, ["Code", "Category", "Count"].map((c) => h("th", { scope: "col" }, c))),
        ),
        h(
          "tbody",
          null,
          e.top_codes.map((c) =>
            h(
              "tr",
              null,
              h("td", null, h("code", null, c.code)),
              h("td", null, c.category),
              h("td", null, num(c.count)),
            )
          ),
        ),
      )
      : null,
  ];
}

function meter(label: string, value: number, max: number, unit: string): HTMLElement {
  const text = max > 0 ? `${num(value)} of ${num(max)} ${unit}` : `${num(value)} ${unit}, no limit`;
  return h(
    "div",
    { class: "meter" },
    h("span", null, label),
    h("meter", { min: 0, max: Math.max(max, value, 1), value, "aria-label": `${label}: ${text}` }),
    h("span", { class: "muted" }, text),
  );
}

function resources(s: Stats): Child[] {
  const r = s.resources;
  const t = r.totals;
  return [
    h(
      "p",
      null,
      `${num(r.jobs_with_limits)} unfinished jobs have a resource budget; ${
        num(r.jobs_over_limit)
      } ` +
        "are over it.",
    ),
    meter("Memory used", t.usage_memory, t.max_memory, "MiB"),
    meter("Memory reserved", t.reserved_memory, t.max_memory, "MiB"),
    meter("CPU used", t.usage_cpu, t.max_cpu, "cores"),
    meter("CPU reserved", t.reserved_cpu, t.max_cpu, "cores"),
    r.top_jobs.length
      ? h(
        "ul",
        { class: "plain" },
        r.top_jobs.map((j) =>
          h(
            "li",
            null,
            h("a", { href: `#/jobs/${j.job_id}` }, `Job ${shortId(j.job_id)}`),
            ` (${j.status}): ${num(j.usage_ratio * 100)} % of its budget`,
            j.over_limit ? h("strong", null, " — over its limit") : "",
          )
        ),
      )
      : null,
  ];
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT/;

/** Every field of an object as label → value, so that fields the service adds show up too. */
function generic(values: Record<string, unknown>): HTMLElement {
  return facts(
    Object.entries(values).map(([key, value]) => {
      const label = key.replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
      const shown = typeof value === "boolean"
        ? (value ? "yes" : "no")
        : typeof value === "number"
        ? num(value)
        : typeof value === "string" && TIMESTAMP.test(value)
        ? dateTime(value)
        : value === null
        ? "—"
        : typeof value === "object"
        ? JSON.stringify(value)
        : String(value);
      return [label, shown];
    }),
  );
}

function field(
  id: string,
  label: string,
  hint?: string,
  attrs: Record<string, string> = {},
): HTMLElement {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("input", {
      id,
      name: id,
      autocomplete: "off",
      ...(hint ? { "aria-describedby": `${id}-hint` } : {}),
      ...attrs,
    }),
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
  );
}

function value(form: HTMLFormElement, name: string): string {
  return String(new FormData(form).get(name) ?? "").trim();
}

function rateLimitForm(ctx: ViewContext): HTMLElement {
  const out = h("div", { class: "outcome", "aria-live": "polite" });
  const form = h(
    "form",
    { "aria-label": "Sending-group rate limit" },
    field("rl-group", "Sending group", undefined, { required: "" }),
    field("rl-rate", "Starts per second", "Empty: no limit (removes the group's limit).", {
      inputmode: "decimal",
    }),
    field("rl-burst", "Burst", "Optional; default: the rate rounded up.", { inputmode: "numeric" }),
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "submit" }, "Save limit"),
      h(
        "button",
        { type: "button", class: "secondary", "data-role": "look-up" },
        "Show current limit",
      ),
    ),
  );
  const show = (limit: GroupRateLimit | null, group: string) =>
    fill(
      out,
      h(
        "p",
        { class: "notice" },
        `Group ${group}: `,
        limit?.max_per_second
          ? `${num(limit.max_per_second)} starts per second, burst ${num(limit.burst)}.`
          : "no rate limit.",
      ),
    );
  form.querySelector("[data-role=look-up]")!.addEventListener("click", async () => {
    const group = value(form, "rl-group");
    if (!group) {
      return fill(out, h("p", { role: "alert", class: "alert" }, "Name a sending group."));
    }
    try {
      // there is no read action for group limits: every job of the group shows it
      const { jobs } = await ctx.session.jobs.listJobs({ sending_group_id: group, limit: 1 });
      if (jobs.length === 0) {
        return fill(
          out,
          h("p", { class: "notice" }, `No job of group ${group} to read its limit from.`),
        );
      }
      const limit = jobs[0].sending_group_rate_limit;
      show(
        limit &&
          { sending_group_id: group, max_per_second: limit.max_per_second, burst: limit.burst },
        group,
      );
    } catch (error) {
      if (!ctx.handled(error)) fill(out, errorAlert(error));
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const group = value(form, "rl-group");
    const rateText = value(form, "rl-rate");
    const burstText = value(form, "rl-burst");
    const rate = rateText === "" ? null : Number(rateText);
    const burst = burstText === "" ? undefined : Number(burstText);
    if (Number.isNaN(rate) || Number.isNaN(burst)) {
      return fill(
        out,
        h("p", { role: "alert", class: "alert" }, "Rate and burst must be numbers."),
      );
    }
    const question = rate === null
      ? `Remove the rate limit of sending group ${group}?`
      : `Limit sending group ${group} to ${num(rate)} starts per second${
        burst ? `, burst ${burst}` : ""
      }?`;
    if (!await ctx.confirm(question, "Save limit", false)) return;
    try {
      const stored = await ctx.session.jobs.setGroupRateLimit({
        sending_group_id: group,
        max_per_second: rate,
        ...(burst === undefined ? {} : { burst }),
      });
      show(stored, group);
    } catch (error) {
      if (!ctx.handled(error)) fill(out, errorAlert(error, "The limit was not saved"));
    }
  });
  return h("div", null, form, out);
}

const QUOTAS = [
  ["max_priority", "Highest priority"],
  ["max_active_jobs", "Active jobs"],
  ["max_pending_tasks", "Unfinished tasks"],
] as const;

function quotaForm(ctx: ViewContext): HTMLElement {
  const out = h("div", { class: "outcome", "aria-live": "polite" });
  const form = h(
    "form",
    { "aria-label": "User quotas" },
    field("q-user", "User id", undefined, { required: "" }),
    QUOTAS.map(([key, label]) =>
      field(`q-${key}`, label, "Empty: keep as it is; none: no limit.", { inputmode: "numeric" })
    ),
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "submit" }, "Save quotas"),
      h(
        "button",
        { type: "button", class: "secondary", "data-role": "look-up" },
        "Show current quotas",
      ),
    ),
  );
  const show = (limits: UserLimits) =>
    fill(
      out,
      facts(
        QUOTAS.map(([key, label]) => [label, limits[key] === null ? "no limit" : num(limits[key])]),
      ),
    );
  const failed = (error: unknown) => {
    if (ctx.handled(error)) return;
    if (error instanceof JobServiceError && error.code === "UNKNOWN_ACTION") {
      fill(
        out,
        h(
          "p",
          { class: "alert", role: "alert" },
          "User quotas are not available on this service yet: it answered ",
          h("code", null, "UNKNOWN_ACTION"),
          " to setUserLimits. This form works once the action is deployed.",
        ),
      );
      return;
    }
    fill(out, errorAlert(error, "The quotas were not saved"));
  };
  const send = async (data: Record<string, number | null>) => {
    const user = value(form, "q-user");
    if (!user) return fill(out, h("p", { role: "alert", class: "alert" }, "Name a user id."));
    try {
      show(await ctx.session.jobs.setUserLimits({ user_id: user, ...data }));
    } catch (error) {
      failed(error);
    }
  };
  // setUserLimits keeps the fields it is not given: with none, it only answers the user's limits
  form.querySelector("[data-role=look-up]")!.addEventListener("click", () => send({}));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data: Record<string, number | null> = {};
    for (const [key] of QUOTAS) {
      const text = value(form, `q-${key}`);
      if (text === "") continue;
      const n = text.toLowerCase() === "none" ? null : Number(text);
      if (n !== null && !Number.isInteger(n)) {
        return fill(
          out,
          h("p", { role: "alert", class: "alert" }, "Quotas are whole numbers or none."),
        );
      }
      data[key] = n;
    }
    const user = value(form, "q-user");
    const said = Object.entries(data).map(([k, v]) => `${k} ${v === null ? "none" : v}`).join(", ");
    if (
      !await ctx.confirm(
        `Set the quotas of user ${user}: ${said || "no change"}?`,
        "Save quotas",
        false,
      )
    ) {
      return;
    }
    await send(data);
  });
  return h("div", null, form, out);
}

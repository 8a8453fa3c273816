/// <reference lib="dom" />
// The dashboard: loads its config, restores the tab's session and shows the view the address names
// (#/jobs, #/jobs/<id>, #/operations; sign-in while nobody is signed in). Hash routes work on any
// static host.
import { JobServiceError } from "../client/job_service.ts";
import { type DashboardConfig, loadConfig } from "./config.ts";
import { fill, h } from "./dom.ts";
import { restoreSession, type Session } from "./session.ts";
import type { Dispose, ViewContext } from "./view.ts";
import { filtersFrom, renderJobs } from "./views/jobs.ts";
import { renderJob } from "./views/job.ts";
import { renderOperations } from "./views/operations.ts";
import { renderSignIn } from "./views/sign_in.ts";
import { errorAlert } from "./widgets.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const main = document.getElementById("main")!;
const nav = document.getElementById("nav")!;
const statusLine = document.getElementById("status-line")!;
const dialog = document.getElementById("confirm") as HTMLDialogElement;

let config: DashboardConfig;
let session: Session | null = null;
let dispose: Dispose | undefined;

/** True while the status line holds a message said for the next view (e.g. "Deleted …"). */
let keepMessage = false;

function announce(text: string): void {
  keepMessage = true;
  fill(statusLine, text ? h("p", null, text) : null);
}

/** A message belongs to the view it was said in, and to the one it led to. */
function clearOldMessage(): void {
  if (keepMessage) keepMessage = false;
  else fill(statusLine);
}

function confirm(question: string, action: string, danger: boolean): Promise<boolean> {
  const text = dialog.querySelector("#confirm-text")!;
  const ok = dialog.querySelector("[data-role=ok]") as HTMLButtonElement;
  text.textContent = question;
  ok.textContent = action;
  ok.className = danger ? "danger" : "";
  dialog.returnValue = "";
  dialog.showModal();
  // the safe answer has the focus: Enter or Escape right away changes nothing
  (dialog.querySelector("[data-role=cancel]") as HTMLButtonElement).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function signOut(message?: string): Promise<void> {
  await session?.signOut();
  session = null;
  if (message) announce(message);
  location.hash = "#/sign-in";
  show();
}

/** An ended or refused session sends the person back to sign-in. */
function handled(error: unknown): boolean {
  if (error instanceof JobServiceError && error.code === "UNAUTHORIZED") {
    signOut(`You were signed out: ${error.message}`);
    return true;
  }
  return false;
}

function drawNav(): void {
  if (!session) return fill(nav);
  const service = session.identity.kind === "service";
  fill(
    nav,
    h(
      "ul",
      null,
      h("li", null, h("a", { href: "#/jobs" }, "Jobs")),
      service ? h("li", null, h("a", { href: "#/operations" }, "Operations")) : null,
    ),
    h("span", { class: "who" }, session.identity.label),
    h(
      "button",
      { type: "button", class: "secondary", onclick: () => signOut("Signed out.") },
      "Sign out",
    ),
  );
  const route = location.hash.split("?")[0];
  for (const link of nav.querySelectorAll("a")) {
    const here = route === link.getAttribute("href") ||
      route.startsWith(`${link.getAttribute("href")}/`);
    if (here) link.setAttribute("aria-current", "page");
  }
}

function show(): void {
  dispose?.();
  dispose = undefined;
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const focus = () => (main.querySelector("h1") as HTMLElement | null)?.focus();
  if (!session) {
    drawNav();
    document.title = "Sign in · Jobs";
    renderSignIn(main, config, (s) => {
      session = s;
      announce(`Signed in as ${s.identity.label}.`);
      if (location.hash === "" || location.hash.startsWith("#/sign-in")) location.hash = "#/jobs";
      else show();
    });
    return focus();
  }
  drawNav();
  const ctx: ViewContext = {
    config,
    session,
    main,
    navigate: (hash) => {
      if (location.hash === hash) show();
      else location.hash = hash;
    },
    announce,
    confirm,
    handled,
  };
  const jobMatch = /^\/jobs\/([^/]+)$/.exec(path);
  if (jobMatch && UUID.test(jobMatch[1])) {
    document.title = "Job · Jobs";
    dispose = renderJob(ctx, jobMatch[1].toLowerCase());
  } else if (path === "/operations" && session.identity.kind === "service") {
    document.title = "Operations · Jobs";
    dispose = renderOperations(ctx);
  } else if (path === "/jobs") {
    document.title = "Jobs";
    dispose = renderJobs(ctx, filtersFrom(new URLSearchParams(query ?? "")));
  } else {
    location.hash = "#/jobs";
    return;
  }
  focus();
}

async function start(): Promise<void> {
  try {
    config = await loadConfig();
    session = await restoreSession(config);
  } catch (error) {
    fill(main, h("h1", null, "The dashboard could not start"), errorAlert(error));
    return;
  }
  addEventListener("hashchange", () => {
    clearOldMessage();
    show();
  });
  show();
}

start();

/// <reference lib="dom" />
// What every view gets from the page: the session, where to draw, and the page's shared services.
import type { DashboardConfig } from "./config.ts";
import type { Session } from "./session.ts";

export interface ViewContext {
  config: DashboardConfig;
  session: Session;
  main: HTMLElement;
  /** goes to a route (a hash such as "#/jobs") */
  navigate(hash: string): void;
  /** says something in the status line (a polite live region) */
  announce(text: string): void;
  /** asks for a confirmation in a modal dialog */
  confirm(question: string, action: string, danger: boolean): Promise<boolean>;
  /** a call failed: true when the page took care of it (an ended session), else show it */
  handled(error: unknown): boolean;
}

/** A view draws itself into `main` and returns what stops its live updates. */
export type Dispose = () => void;

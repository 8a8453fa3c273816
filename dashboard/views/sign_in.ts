/// <reference lib="dom" />
// Sign-in: Supabase Auth's email and password when the page is pointed at a project; the local
// server's development sign-in (a local user or the service) when it offers one; a token (a user's
// or the service's JWT, or a secret key) always.
import type { DashboardConfig } from "../config.ts";
import { fill, h } from "../dom.ts";
import { type Session, signInDev, signInWithPassword, signInWithToken } from "../session.ts";
import { errorAlert } from "../widgets.ts";

/** The user `deno task dev` prints a token for. */
const DEV_USER = "00000000-0000-4000-8000-000000000001";

export function renderSignIn(
  main: HTMLElement,
  config: DashboardConfig,
  signedIn: (session: Session) => void,
  message?: string,
): void {
  const out = h(
    "div",
    { class: "outcome" },
    message ? h("p", { class: "alert", role: "alert" }, message) : null,
  );
  const attempt = async (form: HTMLFormElement, run: () => Promise<Session>) => {
    const button = form.querySelector("button[type=submit]") as HTMLButtonElement;
    button.disabled = true;
    fill(out, h("p", { class: "muted", role: "status" }, "Signing in…"));
    try {
      signedIn(await run());
    } catch (error) {
      fill(out, errorAlert(error, "Sign-in failed"));
    } finally {
      button.disabled = false;
    }
  };

  const forms: HTMLElement[] = [];
  if (config.publishable_key) {
    const form = h(
      "form",
      { class: "panel", "aria-labelledby": "password-title" },
      h("h2", { id: "password-title" }, "Sign in with your account"),
      field("email", "Email", { type: "email", autocomplete: "username", required: "" }),
      field("password", "Password", {
        type: "password",
        autocomplete: "current-password",
        required: "",
      }),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Sign in")),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      attempt(
        form,
        () => signInWithPassword(config, String(data.get("email")), String(data.get("password"))),
      );
    });
    forms.push(form);
  }
  if (config.dev_sign_in) {
    const form = h(
      "form",
      { class: "panel", "aria-labelledby": "dev-title" },
      h("h2", { id: "dev-title" }, "Local development sign-in"),
      h(
        "p",
        { class: "muted" },
        "This server signs tokens with the Supabase CLI's published local secret, so it can sign you in as anyone.",
      ),
      h(
        "fieldset",
        null,
        h("legend", null, "Sign in as"),
        h(
          "label",
          { class: "check" },
          h("input", { type: "radio", name: "role", value: "authenticated", checked: true }),
          "a user",
        ),
        h(
          "label",
          { class: "check" },
          h("input", { type: "radio", name: "role", value: "service_role" }),
          "the service (every job, operations)",
        ),
      ),
      field("dev-user", "User id", { value: DEV_USER, autocomplete: "off", spellcheck: "false" }),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Sign in")),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const who = data.get("role") === "service_role"
        ? { role: "service_role" as const }
        : { role: "authenticated" as const, sub: String(data.get("dev-user") ?? "").trim() };
      attempt(form, () => signInDev(config, who));
    });
    forms.push(form);
  }
  const tokenForm = h(
    "form",
    { class: "panel", "aria-labelledby": "token-title" },
    h("h2", { id: "token-title" }, "Sign in with a token"),
    h(
      "p",
      { class: "muted", id: "token-hint" },
      "A user's access token, or the service's: a service_role JWT or a secret key (sb_secret_…). " +
        "A token is kept for this tab only; use a service key only on a machine you trust.",
    ),
    field("token", "Token", {
      type: "password",
      autocomplete: "off",
      required: "",
      "aria-describedby": "token-hint",
    }),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Sign in")),
  );
  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = String(new FormData(tokenForm).get("token") ?? "");
    attempt(tokenForm, () => signInWithToken(config, token));
  });
  forms.push(tokenForm);

  fill(main, h("h1", { tabindex: -1 }, "Sign in"), out, h("div", { class: "grid" }, forms));
}

function field(id: string, label: string, attrs: Record<string, string | boolean>): HTMLElement {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, name: id, ...attrs }),
  );
}

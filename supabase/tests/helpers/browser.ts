/// <reference lib="dom" />
// A real browser for the dashboard tests: Debian's chromium (apt-get install chromium) driven by
// playwright-core; nothing is downloaded at run time. Where chromium is missing the tests fail in
// CI (CI=true) with what to install, and are skipped with a message elsewhere. Also: axe-core on
// the page as it is, and screenshots into .test-results/screenshots.
import assert from "node:assert/strict";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import axe from "axe-core";

const ROOT = new URL("../../../", import.meta.url).pathname;
export const SCREENSHOTS = `${ROOT}.test-results/screenshots`;

function findChromium(): string | null {
  const given = Deno.env.get("CHROMIUM_PATH");
  if (given) return given;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser"]) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch {
        // not here
      }
    }
  }
  return null;
}

const CHROMIUM = findChromium();
const IN_CI = /^(1|true|yes)$/i.test(Deno.env.get("CI") ?? "");
const MISSING = "chromium is not installed: `apt-get install -y chromium` (.ci/run installs it), " +
  "or set CHROMIUM_PATH";

if (!CHROMIUM && !IN_CI) console.warn(`browser tests skipped: ${MISSING}`);

/** Chromium's flags for a headless run as root without its background network traffic. */
const ARGS = [
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface BrowserRun {
  context: BrowserContext;
  page: Page;
  /** uncaught exceptions and console errors the page reported */
  problems: string[];
}

/**
 * A browser test: a fresh browser and page for `fn`, closed afterwards; the page must not throw.
 * `bypassCSP` lets axe-core be injected despite the page's Content-Security-Policy.
 */
export function browserTest(
  name: string,
  fn: (run: BrowserRun) => Promise<void>,
  options: { viewport?: { width: number; height: number } } = {},
): void {
  Deno.test({
    name,
    ignore: !CHROMIUM && !IN_CI,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      if (!CHROMIUM) throw new Error(`CI=true but ${MISSING}`);
      const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
      try {
        const context = await browser.newContext({
          bypassCSP: true,
          viewport: options.viewport ?? { width: 1280, height: 900 },
        });
        const page = await context.newPage();
        page.setDefaultTimeout(15_000);
        const problems: string[] = [];
        page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
        page.on("console", (message) => {
          // a refused call is shown on the page; the browser also logs it as a failed resource
          if (message.type() === "error" && !/status of (4\d\d)/.test(message.text())) {
            problems.push(`console: ${message.text()}`);
          }
        });
        await fn({ context, page, problems });
        assert.deepEqual(problems, [], "the page reported errors");
      } finally {
        await browser.close();
      }
    },
  });
}

/** Runs axe-core on the page as it is now: no serious or critical violation. */
export async function assertAccessible(page: Page, view: string): Promise<void> {
  const loaded = await page.evaluate(() => "axe" in globalThis);
  if (!loaded) await page.addScriptTag({ content: (axe as unknown as { source: string }).source });
  const violations = await page.evaluate(async () => {
    // deno-lint-ignore no-explicit-any
    const result = await (globalThis as any).axe.run(document, { resultTypes: ["violations"] });
    return (result.violations as {
      id: string;
      impact: string | null;
      help: string;
      nodes: { target: string[] }[];
    }[]).map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${view}: axe-core found serious or critical violations`);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
}

/** Fails unless the page fits the viewport's width (nothing to scroll sideways). */
export async function assertFitsWidth(page: Page, view: string): Promise<void> {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: globalThis.innerWidth,
  }));
  assert.ok(scroll <= width, `${view}: ${scroll} px wide in a ${width} px viewport`);
}

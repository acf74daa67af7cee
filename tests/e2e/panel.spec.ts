// The Panel app (py_agent/panel_app.py, served by `panel serve`) in Chromium: Stop interrupts
// a step that never ends, a reload comes back to the conversation and its data, and the
// page requests nothing from any other origin (so it works offline).
//
// The spec starts its own servers: a fake OpenAI-compatible model (tests/e2e/helpers.ts) and
// `panel serve` on PY_AGENT_PANEL_PORT (default 47996), with the model preset through the
// environment (PY_AGENT_MODEL, PY_AGENT_BASE_URL). The config's static servers are not used.
import { expect, test, type Page } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import { startFakeModel, type FakeModel, type Reply } from "./helpers";

const PORT = Number(process.env.PY_AGENT_PANEL_PORT || 47996);
const ORIGIN = `http://127.0.0.1:${PORT}`;
const APP = `${ORIGIN}/panel_app`;
const DONE: Reply = { message: "Done.", code: "" };

let model: FakeModel;
let panel: ChildProcess;
let replies: Reply[] = [];
let log = "";

test.describe.configure({ mode: "serial" });

test.beforeAll(async () => {
  test.setTimeout(120_000);
  model = await startFakeModel(() => replies.shift() ?? DONE);
  panel = spawn("python", ["-m", "panel", "serve", "py_agent/panel_app.py", "--port", String(PORT), "--address", "127.0.0.1"], {
    env: { ...process.env, PY_AGENT_MODEL: "openai:gpt-4.1-mini", PY_AGENT_BASE_URL: model.url, OPENAI_API_KEY: "test-key" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of [panel.stdout!, panel.stderr!]) stream.on("data", (chunk) => (log += chunk));
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      if ((await fetch(APP)).ok) break;
    } catch {}
    if (panel.exitCode !== null || Date.now() > deadline) throw new Error(`panel serve did not start:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
});

test.afterAll(async () => {
  panel?.kill();
  await model?.close();
});

test.beforeEach(() => {
  replies = [];
});

/** Open the app and wait until its session is live (the welcome message is drawn). */
async function open(page: Page, url = APP) {
  await page.goto(url);
  await expect(page.getByText("Ask a question about the data")).toBeVisible();
}

async function send(page: Page, text: string) {
  const input = page.getByPlaceholder("Send a message");
  await input.fill(text);
  await input.press("Enter");
}

/** The row count the sidebar's table list shows for `table`. */
function count(page: Page, table: string, n: number) {
  return page.getByRole("row", { name: `${table} ${n}`, exact: true });
}

test("Stop interrupts a step that never ends; its writes are rolled back and the chat goes on", async ({ page }, info) => {
  replies = [
    { message: "Saving a tag, then looping.", code: "session.add(Tag(name='before the loop'))\nsession.flush()\nprint('loop' + 'ing now', flush=True)\nwhile True:\n    pass" },
    { message: "Tagging after the stop.", code: "session.add(Tag(name='after the stop'))" },
    DONE,
  ];
  await open(page);
  await expect(count(page, "tags", 5)).toBeVisible();
  await send(page, "Loop forever");
  await expect(page.getByText("looping now").first()).toBeVisible(); // output arrives while the step runs
  const started = Date.now();
  await page.getByRole("button", { name: "Stop" }).click();
  // The step's time limit is 30 s: seeing this well before it means Stop ended the loop.
  await expect(page.getByText("Stopped", { exact: false }).last()).toBeVisible({ timeout: 10_000 });
  info.annotations.push({ type: "stopped after", description: `${Date.now() - started} ms` });
  await expect(count(page, "tags", 5)).toBeVisible(); // the flushed tag was rolled back

  await send(page, "Add a tag");
  await expect(page.getByText("Tagging after the stop.").first()).toBeVisible();
  await expect(page.getByText("Saved as history point").first()).toBeVisible();
  await expect(count(page, "tags", 6)).toBeVisible();
});

test("a reload comes back to the conversation and its database", async ({ page }, info) => {
  replies = [{ message: "Tagging.", code: "session.add(Tag(name='survives a reload'))\nprint('tag' + 'ged')" }, DONE];
  await open(page);
  await send(page, "Tag something");
  await expect(page.getByText("Saved as history point").first()).toBeVisible();
  await expect(count(page, "tags", 6)).toBeVisible();
  await expect(page).toHaveURL(/[?&]conversation=[\w-]+/);
  const address = page.url();

  await page.reload();
  await expect(page.getByText("Ask a question about the data")).toBeVisible();
  expect(page.url()).toBe(address);
  await expect(page.getByText("Tag something").first()).toBeVisible();
  await expect(page.getByText("tagged").first()).toBeVisible();
  await expect(page.getByText("Saved as history point").first()).toBeVisible();
  await expect(count(page, "tags", 6)).toBeVisible(); // this conversation's database, not a fresh demo
  await info.attach("after the reload", { body: await page.screenshot(), contentType: "image/png" });

  // the conversation goes on where it was, and undo still reaches the turn before the reload
  await page.getByRole("button", { name: "Undo", exact: true }).first().click();
  await expect(page.getByText("Undone", { exact: false }).first()).toBeVisible();
  await expect(count(page, "tags", 5)).toBeVisible();

  // a page without the address starts its own conversation on a fresh copy of the demo
  const other = await page.context().newPage();
  await open(other);
  await expect(count(other, "tags", 5)).toBeVisible();
  await expect(other.getByText("Tag something")).toHaveCount(0);
});

test("nothing is requested from another origin: tables, a chart, an approval card and undo", async ({ page }, info) => {
  const foreign: string[] = [];
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.origin === ORIGIN || url.protocol === "data:" || url.protocol === "blob:") return route.continue();
    foreign.push(url.href);
    return route.abort();
  });
  page.on("websocket", (socket) => {
    if (new URL(socket.url()).host !== `127.0.0.1:${PORT}`) foreign.push(socket.url());
  });
  replies = [
    {
      message: "Here is the stock, as a table and a chart, and a tag.",
      code:
        "rows = session.execute(select(Book.title, Book.stock).order_by(Book.title)).all()\n" +
        "show(rows, title='Stock')\nchart(rows, x='title', y='stock', kind='bar', title='Stock per title')\n" +
        "session.add(Tag(name='<img src=x onerror=alert(1)>'))",
    },
    DONE,
  ];
  await open(page);
  await page.getByRole("checkbox").check(); // "Ask before saving changes", the only checkbox
  await send(page, "Show the stock and add a tag");
  await expect(page.getByRole("button", { name: "Allow for the rest of this conversation" })).toBeVisible();
  await expect(page.getByText("Persuasion").first()).toBeVisible(); // a row of the table
  await expect(page.locator(".vega-embed canvas, .vega-embed svg").first()).toBeVisible(); // the chart, drawn
  // the pending row is shown as text: the model's markup is not HTML
  await expect(page.getByText("<img src=x onerror=alert(1)>").first()).toBeVisible();
  await info.attach("approval card", { body: await page.screenshot({ fullPage: true }), contentType: "image/png" });

  await page.getByRole("button", { name: "Approve", exact: true }).click();
  await expect(page.getByText("Saved as history point").first()).toBeVisible();
  await page.getByRole("button", { name: "Undo", exact: true }).first().click();
  await expect(page.getByText("Undone", { exact: false }).first()).toBeVisible();
  expect(foreign).toEqual([]);
});

// Runaway code. With cross-origin isolation a SharedArrayBuffer interrupt stops it in
// place; without it (or when the code ignores the interrupt) the page terminates the
// worker and starts a new one from the last committed snapshot. Either way every
// committed row survives and the conversation goes on.
import { expect, test, type Page } from "@playwright/test";
import { collectEvents, debugPython, events, openApp, PLAIN_PORT, query, startFakeModel, useFakeModel, type Reply } from "./helpers";

const ADD_TAG: Reply = { message: "First I save a tag.", code: 'session.add(Tag(name="before-the-loop"))\nprint("saved")' };
const LOOP: Reply = { message: "Now a loop that never ends.", code: "n = 0\nwhile True:\n    n += 1" };
const ALIVE: Reply = { message: "Still here.", code: 'print("alive", session.scalar(select(func.count()).select_from(Tag)))' };
const DONE: Reply = { message: "Done.", code: "" };

/** Send the message that commits a tag and then spins; resolves once the loop is running. */
async function startRunaway(page: Page, runaway: Reply = LOOP) {
  const model = await startFakeModel((_request, turn) => [ADD_TAG, runaway, ALIVE, DONE][turn] ?? DONE);
  await useFakeModel(page, model);
  await collectEvents(page);
  await page.evaluate(() => void (window as any).pyAgent.send("Save a tag, then loop"));
  await expect(page.locator('article[data-step="2"] .phase')).toHaveText(/^Running…/); // with the elapsed time
  await expect(page.locator("[data-stop]")).toBeVisible();
  expect(await query(page, "SELECT count(*) AS n FROM tags WHERE name = 'before-the-loop'")).toEqual([{ n: 1 }]);
  return model;
}

async function turnEnd(page: Page) {
  await expect.poll(async () => (await events(page, "turn_end")).length, { timeout: 20_000 }).toBeGreaterThan(0);
  return (await events(page, "turn_end"))[0];
}

/** The conversation goes on afterwards, on the same database. */
async function carriesOn(page: Page) {
  const end = await page.evaluate(() => (window as any).pyAgent.send("Are you still there?"));
  expect(end.reason).toBe("done");
  await expect(page.locator("pre.output").last()).toHaveText("alive 6");
}

test("with isolation, an interrupt stops `while True` in place", async ({ page }) => {
  await openApp(page);
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  const model = await startRunaway(page);
  try {
    const started = Date.now();
    await page.getByRole("button", { name: "Stop" }).click();
    const end = await turnEnd(page);
    expect(Date.now() - started).toBeLessThan(2_500); // well before the watchdog would restart the worker
    expect(end.reason).toBe("aborted");
    const [result] = (await events(page, "execution_result")).filter((e) => e.step === 2);
    expect(result.error).toContain("KeyboardInterrupt");
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(0);
    await expect(page.locator('article[data-step="2"] pre.output.error')).toContainText("interrupted");

    // The committed tag is there, in Python too, and the loop's step left nothing open.
    expect(await debugPython(page, "result = [runtime.state.db.in_step, runtime.busy]")).toEqual([false, false]);
    await carriesOn(page);
  } finally {
    await model.close();
  }
});

test("with isolation, code that ignores the interrupt is stopped by restarting the worker", async ({ page }) => {
  await openApp(page);
  // A long C call never checks the interrupt flag: the watchdog must escalate.
  const model = await startRunaway(page, { message: "A long computation in C.", code: "from decimal import Decimal, getcontext\ngetcontext().prec = 400_000\nprint(len(str(Decimal(2).sqrt())))" });
  try {
    await page.evaluate(() => (window as any).pyAgent.interrupt());
    const end = await turnEnd(page);
    expect(end.reason).toBe("aborted");
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(1);
    await page.evaluate(() => (window as any).pyAgent.ready);
    await expect(page.locator(".note.error").last()).toContainText("restarting Python");
    expect(await debugPython(page, "import sqlite3\nresult = sqlite3.connect(runtime.db_path).execute(\"SELECT count(*) FROM tags WHERE name = 'before-the-loop'\").fetchone()[0]")).toBe(1);
    await carriesOn(page);
  } finally {
    await model.close();
  }
});

test("without isolation, the worker is terminated and restored from the last commit", async ({ page }) => {
  await openApp(page, { base: `http://127.0.0.1:${PLAIN_PORT}` });
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(false);
  const model = await startRunaway(page);
  try {
    const started = Date.now();
    await page.getByRole("button", { name: "Stop" }).click();
    const end = await turnEnd(page);
    expect(end.reason).toBe("aborted");
    // No waiting for the step's 30 s limit: terminate is the only way (3 s leaves room for a loaded machine).
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(1);
    await page.evaluate(() => (window as any).pyAgent.ready);
    await expect(page.locator("[data-status]")).toHaveText("Ready");

    // The new worker opened the last committed snapshot and the saved conversation.
    const worker = await debugPython(
      page,
      `import sqlite3
result = {
    "tag": sqlite3.connect(runtime.db_path).execute("SELECT count(*) FROM tags WHERE name = 'before-the-loop'").fetchone()[0],
    "first": runtime.state.messages[0].content,
}`,
    );
    expect(worker).toEqual({ tag: 1, first: "Save a tag, then loop" });
    expect(await query(page, "SELECT count(*) AS n FROM tags WHERE name = 'before-the-loop'")).toEqual([{ n: 1 }]);
    await carriesOn(page);
  } finally {
    await model.close();
  }
});

test("Stop while the model is still thinking ends the turn and cancels the request", async ({ page }) => {
  let release = () => {};
  const model = await startFakeModel(() => new Promise<Reply>((resolve) => (release = () => resolve(DONE))));
  try {
    await openApp(page);
    await useFakeModel(page, model);
    await collectEvents(page);
    await page.evaluate(() => void (window as any).pyAgent.send("Take your time"));
    await expect.poll(() => model.requests.length).toBe(1);
    await page.getByRole("button", { name: "Stop" }).click();
    const end = await turnEnd(page);
    expect(end.reason).toBe("aborted");
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(0);
    expect(await debugPython(page, "result = runtime.transport.in_flight")).toBe(0);
  } finally {
    release();
    await model.close();
  }
});

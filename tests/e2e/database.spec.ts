// Export and import of the database file: the download is a real SQLite file, an
// import replaces the data in Python and in the replica, and a corrupt or foreign file
// is refused with a message while the current data stays as it was.
import { expect, test, type Page } from "@playwright/test";
import { readFile } from "node:fs/promises";
import { debugPython, openApp, query, screenshot, send } from "./helpers";

async function download(page: Page): Promise<Buffer> {
  const [file] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download .sqlite" }).click()]);
  expect(file.suggestedFilename()).toBe("bookshop.sqlite"); // named after the app
  return readFile(await file.path());
}

async function importFile(page: Page, name: string, buffer: Buffer) {
  await page.locator("input[data-import]").setInputFiles({ name, mimeType: "application/vnd.sqlite3", buffer });
}

/** An import waits for the person: the card shows the file's report; confirm it. */
async function confirmImport(page: Page) {
  const card = page.locator('.approval[data-kind="import"]:not(.decided)');
  await expect(card.locator(".question")).toContainText("Replace the database");
  await card.getByRole("button", { name: "Replace the database" }).click();
  await expect(page.locator('.approval[data-kind="import"] .question').last()).toHaveText("You replaced the database.");
}

const pythonAuthors = (page: Page) =>
  debugPython(page, 'import sqlite3\nresult = sqlite3.connect(runtime.db_path).execute("SELECT count(*) FROM authors").fetchone()[0]');

test("export downloads the database; import brings it back in Python and the replica", async ({ page }) => {
  await openApp(page);
  const seeded = await download(page);
  expect(seeded.subarray(0, 16).toString("latin1")).toBe("SQLite format 3\0");
  expect(seeded.includes(Buffer.from("Jane Austen"))).toBe(true);

  await send(page, "Add Tolkien and two of his books");
  expect(await pythonAuthors(page)).toBe(11);
  const withTolkien = await download(page);
  expect(withTolkien.includes(Buffer.from("J. R. R. Tolkien"))).toBe(true);

  await importFile(page, "seeded.sqlite", seeded);
  await confirmImport(page);
  await expect(page.locator(".notice").last()).toHaveText("Imported a database with 7 tables and 112 rows.");
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 10 }]);
  await expect(page.locator(".table-tab", { hasText: "authors" })).toContainText("10");
  expect(await pythonAuthors(page)).toBe(10);

  // The agent works on the imported file, and the conversation went on.
  const end = await send(page, "Add Tolkien and two of his books");
  expect(end.reason).toBe("done");
  expect(await pythonAuthors(page)).toBe(11);
  expect(await debugPython(page, "result = sum(m.kind == 'user' for m in runtime.state.messages)")).toBe(2);
});

test("a corrupt or foreign file is refused and nothing changes", async ({ page }) => {
  await openApp(page);
  await send(page, "Add Tolkien and two of his books");
  const good = await download(page);

  // Keep the header, wreck the pages in the middle: it still looks like SQLite.
  const corrupt = Buffer.from(good);
  for (let i = 4096; i < corrupt.length - 4096; i += 7) corrupt[i] = (i * 31) & 0xff;
  await importFile(page, "corrupt.sqlite", corrupt);
  const refusal = page.locator(".note.error").last();
  await expect(refusal).toContainText("That file was not imported");
  await expect(refusal.locator(".hint")).toContainText("the current database is unchanged");
  await page.screenshot({ path: screenshot("corrupt-import.png") });

  await importFile(page, "notes.sqlite", Buffer.from("these are not the tables you are looking for"));
  await expect(page.locator(".note.error").last()).toContainText("not an SQLite database");

  const rejected = await page.evaluate(
    (bytes) => (window as any).pyAgent.importDb(new Uint8Array(bytes)).then(() => "imported", (e: Error) => e.message),
    [...corrupt],
  );
  expect(rejected).toMatch(/^That file was not imported/);

  // Still the database from before, in both places.
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 11 }]);
  expect(await pythonAuthors(page)).toBe(11);
});

test("Python refuses a corrupt file even if the page's check is skipped", async ({ page }) => {
  await openApp(page);
  const good = await download(page);
  const corrupt = Buffer.from(good);
  for (let i = 4096; i < corrupt.length - 4096; i += 7) corrupt[i] = (i * 31) & 0xff;
  // Straight to the worker, as a buggy host page might.
  const reply = await page.evaluate((bytes) => {
    const agent = (window as any).__agent;
    return agent.request({ type: "import", db: new Uint8Array(bytes) }).then(() => "imported", (e: Error) => e.message);
  }, [...corrupt]);
  expect(reply).toContain("the file was not imported");
  expect(await pythonAuthors(page)).toBe(10);
});

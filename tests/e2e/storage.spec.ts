// Saving you can rely on (issue 12.10). "Saved" comes only after the IndexedDB write is
// durable; and every shape of damaged saved state (the record, the database file, the
// conversation, the transcript, the settings) is named, kept for download, and never
// leaves the page stuck or silently replaces the person's data with demo data.
import { expect, test, type Page } from "@playwright/test";
import { appName, collectEvents, collectFromStart, debugPython, earlyEvents, events, openApp, query, send } from "./helpers";

/** Run `fn(db)` against the app's IndexedDB store from a page of the origin that is not the app. */
async function withStore(page: Page, action: "get" | "put", record?: any): Promise<any> {
  const app = await appName(page); // the record's key: one record per app
  await page.goto("/build.json");
  return page.evaluate(
    ([action, app, record]) =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open("py-agent", 1);
        open.onupgradeneeded = () => open.result.createObjectStore("saves");
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction("saves", action === "get" ? "readonly" : "readwrite");
          const store = tx.objectStore("saves");
          if (action === "put") {
            const value = record && record.__bytes ? { ...record, db: new Uint8Array(record.__bytes), __bytes: undefined } : record;
            store.put(value, app);
          }
          const request = store.get(app);
          tx.oncomplete = () => {
            const value = request.result;
            open.result.close();
            resolve(value && value.db instanceof Uint8Array ? { ...value, db: Array.from(value.db) } : value);
          };
          tx.onerror = () => reject(tx.error);
        };
      }),
    [action, app, record] as const,
  );
}

/** Open the app and check it really works: Ready, and a turn goes through. */
async function worksAfter(page: Page) {
  await openApp(page);
  const end = await send(page, "How many rows does each table have?");
  expect(end.reason).toBe("done");
}

async function downloaded(page: Page, what: string): Promise<number[]> {
  return page.evaluate((what) => (window as any).__agent.downloadDamaged(what).then((bytes: Uint8Array) => Array.from(bytes)), what);
}
const text = (bytes: number[]) => Buffer.from(bytes).toString("utf8");

test("'saved' is reported only once the write is on disk", async ({ page }) => {
  await openApp(page);
  await collectEvents(page);
  // At the moment `saved` is emitted, a fresh read of IndexedDB already holds the new rows.
  await page.evaluate((app) => {
    (window as any).__onDisk = [];
    (window as any).pyAgent.on("saved", (event: any) => {
      if (!event.db) return;
      const open = indexedDB.open("py-agent", 1);
      open.onsuccess = () => {
        const request = open.result.transaction("saves").objectStore("saves").get(app);
        request.onsuccess = () => {
          const bytes = new TextDecoder("latin1").decode(request.result.db);
          (window as any).__onDisk.push({ step: event.step, tolkien: bytes.includes("J. R. R. Tolkien") });
          open.result.close();
        };
      };
    });
  }, await appName(page));
  await send(page, "Add Tolkien and two of his books");
  await expect.poll(() => page.evaluate(() => (window as any).__onDisk)).toEqual([{ step: 1, tolkien: true }]);
  expect((await events(page, "saved")).filter((e) => e.db).map((e) => e.reason)).toEqual(["commit"]);
  // The transcript marks the step saved only then (its label follows the `saved` event).
  await expect(page.locator(".changes.committed.saved")).toHaveCount(1);
});

test("a saved record replaced by a string is reported, kept, and the app still works", async ({ page }) => {
  await withStore(page, "put", "<html>not what the app saved</html>");
  await collectFromStart(page);
  await worksAfter(page);
  const damaged = await earlyEvents(page, "storage_damaged");
  expect(damaged.map((e) => e.what)).toEqual(["record"]);
  expect(damaged[0].message).toContain("could not be read");
  expect(damaged[0].message).toContain("download it");
  expect(text(await downloaded(page, "record"))).toBe("<html>not what the app saved</html>");
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 10 }]);
  // The copy survives the next visit, and the record is whole again.
  await page.reload();
  await page.evaluate(() => (window as any).pyAgent.ready);
  expect(await earlyEvents(page, "storage_damaged")).toEqual([]);
  expect(text(await downloaded(page, "record"))).toBe("<html>not what the app saved</html>");
});

test("a truncated database, a conversation and a transcript of the wrong type, broken settings", async ({ page }) => {
  await openApp(page);
  const good: number[] = await page.evaluate(() => (window as any).pyAgent.exportDb().then((b: Uint8Array) => Array.from(b)));
  const truncated = good.slice(0, Math.floor(good.length / 2));
  await withStore(page, "put", { __bytes: truncated, conversation: "not a conversation", log: { oops: 1 }, queue: [] });
  await page.evaluate(() => localStorage.setItem("py-agent:settings", "{not json"));
  await collectFromStart(page);
  await worksAfter(page);
  const damaged = await earlyEvents(page, "storage_damaged");
  expect(damaged.map((e) => e.what).sort()).toEqual(["conversation", "database", "log", "settings"]);
  for (const event of damaged) expect(event.message).toContain("A copy of what could not be read is kept");
  // Each copy is what was saved, byte for byte.
  expect(await downloaded(page, "database")).toEqual(truncated);
  expect(text(await downloaded(page, "conversation"))).toBe("not a conversation");
  expect(JSON.parse(text(await downloaded(page, "log")))).toEqual({ oops: 1 });
  expect(text(await downloaded(page, "settings"))).toBe("{not json");
  // The database could not be read, so the app says it started from its initial data.
  expect(damaged.find((e) => e.what === "database").message).toMatch(/started from its initial data/);
  expect(await page.evaluate(() => localStorage.getItem("py-agent:settings"))).not.toBe("{not json");
});

test("a damaged conversation and transcript never cost the person their data", async ({ page }) => {
  await openApp(page);
  await send(page, "Add Tolkien and two of his books");
  await expect.poll(() => query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 11 }]);
  await page.waitForTimeout(300); // the last snapshot of the turn lands
  const record = await withStore(page, "get");
  const goodEntries = record.log.filter((e: any) => e.type === "user_message");
  await withStore(page, "put", {
    __bytes: record.db,
    // Plain JSON of the right outer shape, but not a conversation Python can read.
    conversation: { version: 1, messages: [{ kind: "user" }, { kind: "nonsense", content: 1 }] },
    log: [...goodEntries, "a string entry", { type: "execution_result", step: "two", output: 3 }],
  });
  await collectFromStart(page);
  await worksAfter(page);
  const damaged = await earlyEvents(page, "storage_damaged");
  expect(damaged.map((e) => e.what).sort()).toEqual(["conversation", "log"]);
  expect(damaged.find((e) => e.what === "log").message).toContain("2 of 3 entries");
  expect(JSON.parse(text(await downloaded(page, "conversation"))).messages[1].kind).toBe("nonsense");
  // The person's rows are all there, in the replica and in Python; the readable entries are shown.
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 11 }]);
  expect(await debugPython(page, 'import sqlite3\nresult = sqlite3.connect(runtime.db_path).execute("SELECT count(*) FROM books").fetchone()[0]')).toBe(28);
  await expect(page.locator(".msg.user").first()).toHaveText("Add Tolkien and two of his books");
});

// Boot snapshots (issue 13): the first visit boots Python from the site's packages; once
// the agent is ready, a second worker boots the same way in the background, warms up and
// makes a memory snapshot (imports and schema loaded, nothing of the visit), which the page
// keeps in Cache Storage; later visits restore it. A snapshot of another build or a damaged
// one is never restored: the worker boots from the packages and the page has a fresh one
// made. Extra packages the app allows are installed the
// first time model code imports them, from the site itself, also offline.
import { expect, test, type Page } from "@playwright/test";
import { collectEvents, debugPython, events, openApp, query, send, startDevServer, startFakeModel, useFakeModel } from "./helpers";

const CACHE = "py-agent.boot"; // web/app/bootcache.js

/** Record every `booted` and `boot_snapshot` event from the very start (before the app's own listeners). */
async function recordBoots(page: Page) {
  await page.addInitScript(() => {
    (window as any).__booted = [];
    (window as any).__snapshots = [];
    const timer = setInterval(() => {
      const api = (window as any).pyAgent;
      if (!api) return;
      clearInterval(timer);
      api.on("booted", (e: any) => (window as any).__booted.push(e));
      api.on("boot_snapshot", (e: any) => (window as any).__snapshots.push(e));
    }, 1);
  });
}

async function visit(page: Page, { reload = false } = {}) {
  if (reload) {
    await page.reload();
    await page.evaluate(() => (window as any).pyAgent.ready);
    await expect(page.locator("[data-status]")).toHaveText("Ready");
  } else {
    await openApp(page);
  }
  await expect.poll(() => page.evaluate(() => (window as any).__booted.length)).toBeGreaterThan(0);
  return page.evaluate(() => (window as any).__booted.at(-1));
}

/** The stored snapshot: its header (JSON) and size, or null. */
function stored(page: Page): Promise<{ header: any; size: number } | null> {
  return page.evaluate(async (name) => {
    const response = await (await caches.open(name)).match(new URL("boot-snapshot", document.baseURI).href);
    if (!response) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    const length = new DataView(bytes.buffer).getUint32(8, true);
    return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + length))), size: bytes.length };
  }, CACHE);
}

/** Wait until this page load's background worker made a snapshot and the page kept it; returns it. */
async function keptSnapshot(page: Page, key: string) {
  await expect.poll(() => page.evaluate(() => (window as any).__snapshots.length), { timeout: 120_000 }).toBeGreaterThan(0);
  const [made] = await page.evaluate(() => (window as any).__snapshots);
  expect(made).toMatchObject({ kept: true, error: null });
  const kept = (await stored(page))!;
  expect(kept.header.key).toBe(key);
  return kept;
}

/** Whether the stored snapshot's bytes contain `text`. */
function snapshotHolds(page: Page, text: string) {
  return page.evaluate(
    async ({ name, text }) => {
      const response = await (await caches.open(name)).match(new URL("boot-snapshot", document.baseURI).href);
      return new TextDecoder("latin1").decode(new Uint8Array(await response!.arrayBuffer())).includes(text);
    },
    { name: CACHE, text },
  );
}

type Damage = "stale" | "flip" | "truncate" | "garbage";

/** Damage the stored snapshot (in the page: its CSP allows no eval, so the kinds are fixed). */
async function tamper(page: Page, damage: Damage) {
  await page.evaluate(
    async ({ name, damage }) => {
      const cache = await caches.open(name);
      const url = new URL("boot-snapshot", document.baseURI).href;
      let bytes = new Uint8Array(await (await cache.match(url))!.arrayBuffer());
      if (damage === "stale") {
        // As if an older build had made it: the same bytes with another boot key.
        const length = new DataView(bytes.buffer).getUint32(8, true);
        const text = new TextDecoder().decode(bytes.subarray(12, 12 + length));
        const key: string = JSON.parse(text).key;
        bytes.set(new TextEncoder().encode(text.replace(key, "0".repeat(key.length))), 12);
      } else if (damage === "flip") {
        for (let i = 0; i < 64; i++) bytes[(bytes.length >> 1) + i] ^= 0x5a; // in the middle of the heap
      } else if (damage === "truncate") {
        bytes = bytes.slice(0, bytes.length >> 1);
      } else {
        bytes = new TextEncoder().encode("<html>not found</html>");
      }
      await cache.put(url, new Response(bytes));
    },
    { name: CACHE, damage },
  );
}

/** Until AgentClient offers and keeps snapshots (requested from the runtime helper), skip. */
async function skipUnlessThePageKeepsSnapshots(page: Page) {
  const source = await (await page.request.get("/agent.js")).text();
  test.skip(!source.includes("offerBootSnapshot"), "AgentClient does not use bootcache.js yet (coord/requests.md)");
}

async function bootKey(page: Page): Promise<string> {
  return (await (await page.request.get("/wheels/manifest.json")).json()).boot.key;
}

test("a second visit restores the snapshot, and works like the first", async ({ page }) => {
  await skipUnlessThePageKeepsSnapshots(page);
  await recordBoots(page);
  const first = await visit(page);
  expect([first.from, first.snapshot, first.rejected]).toEqual(["packages", "wanted", null]);
  const key = await bootKey(page);
  const { header, size } = await keptSnapshot(page, key);
  expect(header.schema).toBe("bookshop"); // the demo build's app module (examples/bookshop)
  expect(size).toBeGreaterThan(20e6);
  const end = await send(page, "Add Tolkien and two of his books");
  expect(end.reason).toBe("done");
  // pydantic's plugin scan (every distribution's metadata) is off: it cost a quarter second of each boot.
  expect(await debugPython(page, "import os, sys\nresult = [os.environ.get('PYDANTIC_DISABLE_PLUGINS'), 'email.message' in sys.modules]")).toEqual(["__all__", false]);
  const firstDraw = await debugPython(page, "import random\nresult = random.random()");

  const second = await visit(page, { reload: true });
  expect([second.from, second.snapshot, second.rejected]).toEqual(["snapshot", "restored", null]);
  // The visit's own state came from the page's saves, not from the snapshot.
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 11 }]);
  await expect(page.locator(".msg.user")).toContainText("Add Tolkien and two of his books");
  expect(await debugPython(page, "import sys\nresult = [m in sys.modules for m in ('bookshop', 'sqlalchemy.orm', 'pydantic')]")).toEqual([true, true, true]);
  // Each restored visit draws its own random numbers.
  expect(await debugPython(page, "import random\nresult = random.random()")).not.toBe(firstDraw);

  // Interrupts still work in a restored Python: `while True` stops in place.
  const model = await startFakeModel((_request, turn) =>
    [{ message: "Looping.", code: "n = 0\nwhile True:\n    n += 1" }, { message: "Done.", code: "" }][turn] ?? { message: "Done.", code: "" },
  );
  try {
    await useFakeModel(page, model);
    await collectEvents(page);
    await page.evaluate(() => void (window as any).pyAgent.send("Loop forever"));
    await expect(page.locator("[data-stop]")).toBeVisible();
    await expect.poll(async () => (await events(page, "signal")).some((e) => e.signal === "execution")).toBe(true);
    // The code itself is running (the signal comes just before it starts; a Stop before that
    // ends the turn with no step result), as interrupt.spec.ts waits for it.
    await expect(page.locator("article .phase").last()).toHaveText(/^Running… [1-9]/);
    await page.getByRole("button", { name: "Stop" }).click();
    await expect.poll(async () => (await events(page, "turn_end")).length, { timeout: 20_000 }).toBeGreaterThan(0);
    const [result] = await events(page, "execution_result");
    expect(result.error).toContain("KeyboardInterrupt");
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(0);
  } finally {
    await model.close();
  }
});

test("a snapshot of another build is not restored, and is replaced", async ({ page }) => {
  test.setTimeout(360_000); // four or five boots from the packages
  await skipUnlessThePageKeepsSnapshots(page);
  await recordBoots(page);
  await visit(page);
  const key = await bootKey(page);
  await keptSnapshot(page, key);
  // This visit saves a row and a message the next boot's snapshot must not contain.
  const MARK = "visit-mark-5f3a9c";
  const model = await startFakeModel((_request, turn) =>
    [{ message: "Saved.", code: `session.add(Tag(name="${MARK}"))` }, { message: "Done.", code: "" }][turn % 2],
  );
  try {
    await useFakeModel(page, model);
    expect((await send(page, `Add a tag called ${MARK}`)).reason).toBe("done");
  } finally {
    await model.close();
  }
  await tamper(page, "stale");
  expect((await stored(page))!.header.key).toBe("0".repeat(32));

  const second = await visit(page, { reload: true });
  expect([second.from, second.snapshot, second.rejected]).toEqual(["packages", "wanted", "stale"]);
  await keptSnapshot(page, key); // replaced by one of this build
  // Made by a worker that never opened this visit's database or conversation: none of it is in.
  expect(await query(page, `SELECT count(*) AS n FROM tags WHERE name = '${MARK}'`)).toEqual([{ n: 1 }]);
  expect(await snapshotHolds(page, MARK)).toBe(false);
  const third = await visit(page, { reload: true });
  expect(third.from).toBe("snapshot");
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 10 }]);
});

test("a damaged snapshot is not restored: Python boots from the packages", async ({ page }) => {
  test.setTimeout(360_000); // four or five boots from the packages
  await skipUnlessThePageKeepsSnapshots(page);
  await recordBoots(page);
  await visit(page);
  const key = await bootKey(page);
  await keptSnapshot(page, key);

  await tamper(page, "flip"); // a few bytes changed in the middle of the heap
  const second = await visit(page, { reload: true });
  expect([second.from, second.snapshot]).toEqual(["packages", "wanted"]);
  expect(second.rejected).toBe("corrupt: checksum");
  await keptSnapshot(page, key);

  await tamper(page, "truncate");
  expect((await visit(page, { reload: true })).rejected).toBe("corrupt: wrong length");
  await keptSnapshot(page, key); // before the next tamper: the background worker would replace it
  await tamper(page, "garbage");
  expect((await visit(page, { reload: true })).rejected).toBe("corrupt: not a snapshot");

  const end = await send(page, "How many rows does each table have?");
  expect(end.reason).toBe("done");
});

test("an allowed extra package is installed the first time a step imports it, offline", async ({ page }) => {
  const server = await startDevServer();
  const model = await startFakeModel((_request, turn) =>
    [
      { message: "A table.", code: 'from tabulate import tabulate\nprint(tabulate([["Austen", 1813]], headers=["author", "year"]))' },
      { message: "Done.", code: "" },
    ][turn % 2],
  );
  try {
    await openApp(page, { base: server.url, query: "test" });
    // Nothing extra at boot.
    expect(await debugPython(page, "import sys\nresult = ['tabulate' in sys.modules, 'micropip' in sys.modules]")).toEqual([false, false]);
    // Wait for the service worker to hold the whole build (the wheels included), then go offline.
    const files: string[] = (await (await page.request.get(`${server.url}/build.json`)).json()).files;
    expect(files).toContain("wheels/tabulate-0.10.0-py3-none-any.whl");
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 60_000 });
    await expect
      .poll(
        async () =>
          page.evaluate(async () => {
            const names = (await caches.keys()).filter((n) => n.startsWith("py-agent-"));
            return names.length ? (await (await caches.open(names[0])).keys()).length : 0;
          }),
        { timeout: 90_000 },
      )
      .toBeGreaterThanOrEqual(files.length);
    await server.stop();

    const wired = await debugPython(page, "result = getattr(runtime.agent, 'before_run', None) is not None");
    if (!wired) {
      // Until the loop has the before_run hook (coord/requests.md: trust, runtime), check the
      // installer the step will use (py_agent/browser/ondemand.py + glue.py), offline too.
      test.info().annotations.push({ type: "partial", description: "no before_run hook in the loop yet: installer checked directly" });
      const direct = await debugPython(
        page,
        `events = await runtime.on_demand.before_run(1, "from tabulate import tabulate")
from tabulate import tabulate
result = [[e.name, e.version, e.error] for e in events] + [tabulate([["Austen", 1813]], headers=["author", "year"])]`,
      );
      expect(direct[0]).toEqual(["tabulate", "0.10.0", null]);
      expect(direct[1]).toMatch(/author\s+year/);
      return;
    }

    await useFakeModel(page, model);
    await collectEvents(page);
    const end = await send(page, "Show Austen as a table");
    expect(end.reason).toBe("done");
    const [installed] = await events(page, "package_installed");
    expect(installed).toMatchObject({ step: 1, name: "tabulate", version: "0.10.0", error: null });
    const [result] = await events(page, "execution_result");
    expect(result.error).toBeNull();
    expect(result.output).toMatch(/author\s+year/);
    expect(result.output).toContain("Austen");
    // A later step that imports it again installs nothing.
    await collectEvents(page);
    await send(page, "Again");
    expect(await events(page, "package_installed")).toEqual([]);
  } finally {
    await model.close();
    await server.stop();
  }
});

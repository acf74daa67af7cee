// An escape in the worker reaches nothing the page trusts (issue 7.5). Hostile
// JavaScript runs directly in the agent worker (a test-only module, ?test) as if model
// code had got the worker's global object: it must not change what the page loads or
// keeps (Cache Storage, IndexedDB, the service worker, the tab lock) nor find the key.
// Behind that wall, the service worker serves nothing offline that differs from the
// build; and the fetch shim never hands the key to the worker, even when a server
// echoes it back in a 401.
import { expect, test, type Page } from "@playwright/test";
import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { collectEvents, DIST, events, openApp, runInWorker, send, startDevServer, startFakeModel, scripted } from "./helpers";

const KEY = "sk-wall-5e1d0b7a-never-in-the-worker";

/** Wait until the service worker controls the page and has cached every file of the build. */
async function cachedSite(page: Page, base: string) {
  const files: string[] = (await (await page.request.get(`${base}/build.json`)).json()).files;
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 60_000 });
  await expect
    .poll(() => page.evaluate(async () => {
      const name = (await caches.keys()).find((n) => n.startsWith("py-agent-")); // the site's copy
      return name ? (await (await caches.open(name)).keys()).length : 0;
    }), { timeout: 60_000 })
    .toBeGreaterThanOrEqual(files.length);
}

/** The saved record as JSON text (the database as its byte count and a checksum). */
async function savedRecord(page: Page) {
  const app = await page.evaluate(() => (window as any).__agent.schema);
  return page.evaluate(
    (app) =>
      new Promise<string>((resolve) => {
        const open = indexedDB.open("py-agent", 1);
        open.onsuccess = () => {
          const request = open.result.transaction("saves").objectStore("saves").get(app);
          request.onsuccess = () => {
            const { db, conversation, log } = request.result;
            const sum = db.reduce((s: number, b: number, i: number) => (s + b * (i + 1)) % 1_000_003, 0);
            resolve(JSON.stringify({ db: [db.length, sum], conversation, log: log.length }));
            open.result.close();
          };
        };
      }),
    app,
  );
}

/** What the service worker's cache holds for `path` (text). */
function cached(page: Page, path: string) {
  return page.evaluate(async (path) => {
    const cache = await caches.open((await caches.keys()).find((n) => n.startsWith("py-agent-"))!);
    return (await cache.match(new URL(path, location.href)))?.text() ?? null;
  }, path);
}

const HOSTILE = (app: string) => `
export default async (scope) => {
  const report = {};
  const attempt = async (name, action) => {
    try {
      const value = await action();
      report[name] = "reached: " + String(value).slice(0, 80);
    } catch (error) {
      report[name] = ("blocked: " + error.name + ": " + error.message).slice(0, 160);
    }
  };
  const app = ${JSON.stringify(app)};
  await attempt("Cache Storage", async () => {
    const cache = await scope.caches.open((await scope.caches.keys()).find((n) => n.startsWith("py-agent-")));
    await cache.put(new Request("index.html"), new Response("<h1>HACKED</h1>", { headers: { "Content-Type": "text/html" } }));
    return "rewrote index.html";
  });
  await attempt("IndexedDB", () => new Promise((resolve, reject) => {
    const open = scope.indexedDB.open("py-agent", 1);
    open.onsuccess = () => {
      const tx = open.result.transaction("saves", "readwrite");
      tx.objectStore("saves").put({ conversation: "HACKED" }, app);
      tx.oncomplete = () => resolve("overwrote the record");
    };
    open.onerror = () => reject(open.error);
  }));
  await attempt("origin storage (OPFS)", async () => (await scope.navigator.storage.getDirectory()).name);
  await attempt("storage buckets", async () => (await scope.navigator.storageBuckets.open("evil")).name);
  await attempt("tab lock", () => scope.navigator.locks.request("py-agent:" + app, { steal: true }, () => "stolen"));
  await attempt("tab channel", () => { new scope.BroadcastChannel("py-agent:" + app).postMessage({ type: "release" }); return "asked the page to stand down"; });
  await attempt("nested worker", () => new scope.Worker("worker.js", { type: "module" }));
  await attempt("shared worker", () => new scope.SharedWorker("worker.js"));
  await attempt("service worker", () => scope.navigator.serviceWorker.register("sw.js?v=evil"));
  await attempt("a storage API left on a prototype", () => {
    for (let o = scope; o; o = Object.getPrototypeOf(o)) {
      for (const name of ["caches", "indexedDB"]) {
        const found = Object.getOwnPropertyDescriptor(o, name);
        if (found) return name + " on " + (o.constructor?.name ?? "?");
      }
    }
    throw new Error("none");
  });
  await attempt("the page's own store module", async () => {
    const { saves } = await import("./store.js");
    await saves.save(app, { conversation: "HACKED" });
    return "saved";
  });
  await attempt("localStorage (a remembered key)", () => scope.localStorage.getItem("py-agent:key"));
  await attempt("cookies", () => scope.cookieStore.getAll());
  await attempt("rewrite index.html on the server", async () => {
    const status = (await fetch("index.html", { method: "PUT", body: "HACKED" })).status;
    if (status >= 400) throw new Error("HTTP " + status);
    return status;
  });
  scope.postMessage({ type: "snapshot", reason: "commit", conversation: "HACKED", db: new Uint8Array([1, 2, 3]) });
  report["a snapshot the page must refuse"] = "posted";
  return report;
};
`;

test("hostile JavaScript in the worker changes nothing the page loads or keeps, and finds no key", async ({ page }) => {
  const server = await startDevServer();
  const model = await startFakeModel(scripted({ message: "Adding.", code: 'session.add(Tag(name="before-the-attack"))' }));
  try {
    await openApp(page, { base: server.url, query: "test" });
    await page.evaluate(
      ({ url, key }) => (window as any).pyAgent.configure({ provider: "openai-compatible", model: "fake", baseUrl: url, key, rememberKey: true }),
      { url: model.url, key: KEY },
    );
    expect(await page.evaluate(() => localStorage.getItem("py-agent:key"))).toBe(KEY); // remembered: the worst case
    expect((await send(page, "Add a tag")).reason).toBe("done");
    await cachedSite(page, server.url);
    await collectEvents(page);
    const before = await savedRecord(page);
    const indexHtml = await readFile(`${DIST}/index.html`, "utf8");
    expect(await cached(page, "index.html")).toBe(indexHtml);

    const report = await runInWorker(page, "hostile.test.mjs", HOSTILE(await page.evaluate(() => (window as any).__agent.schema)));
    test.info().annotations.push({ type: "report", description: JSON.stringify(report, null, 1) });
    for (const [name, outcome] of Object.entries(report)) {
      if (name !== "a snapshot the page must refuse") expect(outcome, name).toMatch(/^blocked/);
    }
    // The page refused to keep what the hostile worker posted, and still holds the database.
    await expect.poll(async () => (await events(page, "error")).map((e) => e.message)).toContain("The page refused to save what Python sent: its conversation is not in the expected form.");
    expect(await page.evaluate(() => (window as any).__agent.writer)).toBe(true);
    expect(await events(page, "tab_conflict")).toEqual([]);
    expect(await savedRecord(page)).toBe(before);
    expect(await cached(page, "index.html")).toBe(indexHtml);

    // The key is nowhere in the worker: not in Python's memory or files.
    const scan = await page.evaluate((key) => (window as any).pyAgent.scan(key), KEY);
    expect(scan.heap).toBe(0);
    expect(scan.files).toEqual([]);

    // The next page served, online and then offline, is the app as built, with the data as saved.
    await page.reload();
    await page.evaluate(() => (window as any).pyAgent.ready);
    expect(await page.content()).not.toContain("HACKED");
    await server.stop();
    await page.reload();
    await page.evaluate(() => (window as any).pyAgent.ready);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await page.content()).not.toContain("HACKED");
    await expect(page.locator(".msg.user")).toHaveText("Add a tag");
    expect(await savedRecord(page)).toBe(before);
  } finally {
    await model.close();
    await server.stop();
  }
});

test("offline, the service worker never serves a cached file that differs from the build", async ({ page }) => {
  const server = await startDevServer();
  try {
    await openApp(page, { base: server.url, query: "test" });
    await cachedSite(page, server.url);
    // As if something had got past the worker's wall: rewrite the page and a module in the cache.
    await page.evaluate(async () => {
      const cache = await caches.open((await caches.keys()).find((n) => n.startsWith("py-agent-"))!);
      for (const [path, body] of [["./", "<h1>HACKED page</h1>"], ["app.js", "window.__hacked = true;"]]) {
        const url = new URL(path, location.href);
        const old = await cache.match(url);
        await cache.put(url, new Response(body, { headers: old!.headers }));
      }
    });
    await server.stop();
    await page.reload();
    await expect(page.locator("body")).toContainText("The offline copy of this app in your browser was changed since it was saved");
    expect(await page.content()).not.toContain("HACKED");
    expect(await page.evaluate(() => (window as any).__hacked)).toBeUndefined();
    expect(await cached(page, "./")).toBe(null); // dropped: the next visit online caches a fresh copy
    // A damaged module is refused too (and dropped); an intact one is served as built.
    await page.goto(`${server.url}/app.js`);
    expect(await page.content()).not.toContain("__hacked");
    expect(await cached(page, "app.js")).toBe(null);
    await page.goto(`${server.url}/agent.js`);
    expect((await page.locator("pre").innerText()).trim()).toBe((await readFile(`${DIST}/agent.js`, "utf8")).trim());
  } finally {
    await server.stop();
  }
});

test("a 401 that echoes the key does not carry it into the worker, its memory or the saved log", async ({ page }) => {
  // A proxy that answers 401 and repeats the Authorization header, in a body sent a few
  // bytes at a time (the key arrives split across chunks) and in a header.
  const server = http.createServer((req, res) => {
    res.setHeader("Access-Control-Allow-Origin", "*");
    res.setHeader("Access-Control-Allow-Headers", "*");
    res.setHeader("Access-Control-Expose-Headers", "x-echo");
    if (req.method === "OPTIONS") return res.writeHead(204).end();
    req.resume();
    req.on("end", async () => {
      const echo = String(req.headers.authorization);
      res.writeHead(401, { "Content-Type": "application/json", "x-echo": echo });
      const body = JSON.stringify({ error: { message: `Invalid credentials: ${echo}`, type: "invalid_request_error" } });
      for (let i = 0; i < body.length; i += 5) {
        res.write(body.slice(i, i + 5));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  await page.addInitScript(() => {
    const traffic: string[] = ((window as any).__traffic = []);
    const serialize = (value: unknown) =>
      JSON.stringify(value, (_key, v) => (ArrayBuffer.isView(v) ? `bytes:${new TextDecoder("latin1").decode(v as Uint8Array)}` : typeof SharedArrayBuffer !== "undefined" && v instanceof SharedArrayBuffer ? "shared" : v));
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, message: any, transfer?: any) {
      traffic.push(`to worker ${serialize(message)}`);
      return post.call(this, message, transfer);
    } as any;
  });
  try {
    await openApp(page);
    await page.evaluate(({ url, key }) => (window as any).pyAgent.configure({ provider: "openai-compatible", model: "fake", baseUrl: url, key }), { url, key: KEY });
    await collectEvents(page);
    const end = await send(page, "Hello?");
    expect(end.reason).toBe("error");
    const error = (await events(page, "error")).at(-1);
    expect(error.message).toContain("401");
    expect(JSON.stringify(error)).not.toContain("5e1d0b7a");

    const traffic: string[] = await page.evaluate(() => (window as any).__traffic);
    expect(traffic.some((m) => m.includes('"type":"fetch_chunk"'))).toBe(true);
    expect(traffic.some((m) => m.includes("[API key removed]"))).toBe(true); // the echo arrived, without the key
    expect(traffic.filter((m) => m.includes("5e1d0b7a"))).toEqual([]);
    const scan = await page.evaluate((key) => (window as any).pyAgent.scan(key), KEY);
    expect(scan.heap).toBe(0);
    expect(scan.files).toEqual([]);
    await expect.poll(() => page.evaluate(() => (window as any).__agent.log.length)).toBeGreaterThan(0);
    await page.waitForTimeout(300);
    const saved = await page.evaluate(
      (app) =>
        new Promise<string>((resolve) => {
          const open = indexedDB.open("py-agent", 1);
          open.onsuccess = () => {
            const request = open.result.transaction("saves").objectStore("saves").get(app);
            request.onsuccess = () => resolve(JSON.stringify({ log: request.result.log, conversation: request.result.conversation }));
          };
        }),
      await page.evaluate(() => (window as any).__agent.schema),
    );
    expect(saved).toContain("Hello?");
    expect(saved).not.toContain("5e1d0b7a");
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

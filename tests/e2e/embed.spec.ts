// Embedding a py-agent site in other pages (web/app/embed.js): `createAgent()` on a page of
// the same origin and from a page of another origin, and the `<py-agent-chat>` snippet on a
// plain documentation page. The site is the bookshop (the suite's build, copied under agent/
// of the docs folder by sites.setup.ts); every host here is `python3 -m http.server`, which
// sends no special headers, so the framed site secures itself through its service worker.
import { expect, test, type Page } from "@playwright/test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DOCS, fakeModelServer, plainServer, scriptReplies, type Served } from "./sites";

const BOOT = 90_000; // a Pyodide boot (with the service worker's first-visit reload) on two cores

let servers: Served[] = [];
let dirs: string[] = [];
test.afterEach(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  servers = [];
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  dirs = [];
});

async function serve(dir: string) {
  const server = await plainServer(dir);
  servers.push(server);
  return server;
}

/** A temp folder holding `files` (name → text), and optionally the bookshop under agent/. */
function folder(files: Record<string, string>, { withSite = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "py-agent-embed-"));
  dirs.push(dir);
  if (withSite) fs.symlinkSync(path.join(DOCS, "agent"), path.join(dir, "agent"), "dir");
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

/** A host page that loads embed.js from `src` and keeps createAgent and the events on window. */
function hostPage(src: string) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Host</title></head>
<body>
  <h1>A page that uses the agent</h1>
  <script type="module">
    import { createAgent } from ${JSON.stringify(src)};
    window.createAgent = createAgent;
    window.events = [];
    window.asked = [];
  </script>
</body></html>
`;
}

/** createAgent on the host page (kept as window.agent); events and approvals land on window. */
async function createAgentOn(page: Page, options: Record<string, unknown>, { approveFn = false } = {}) {
  await page.waitForFunction(() => typeof (window as any).createAgent === "function");
  return page.evaluate(
    async ({ options, approveFn }) => {
      const w = window as any;
      const agent = await w.createAgent({
        ...options,
        onEvent: (event: any) => w.events.push(event),
        ...(approveFn
          ? {
              approve: (event: any) => {
                w.asked.push(event);
                return true;
              },
            }
          : {}),
      });
      w.agent = agent;
      return { app: agent.app?.title ?? agent.app?.name, frames: document.querySelectorAll("iframe").length };
    },
    { options, approveFn },
  );
}

const hostEvents = (page: Page, type?: string): Promise<any[]> =>
  page.evaluate((type) => (window as any).events.filter((e: any) => !type || e.type === type), type);

test("createAgent on another page of the same origin: a turn through a fake model, and db.query sees it", async ({ page }) => {
  test.setTimeout(150_000);
  const model = await fakeModelServer();
  servers.push(model);
  await scriptReplies(
    model,
    { message: "Adding the tag.", code: 'session.add(Tag(name="embedded-inline"))\nprint("saved")' },
    { message: "Saved the tag.", code: "" },
  );
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  const site = await serve(folder({ "host.html": hostPage("./agent/embed.js") }, { withSite: true }));
  await page.goto(`${site.url}/host.html`);

  const created = await createAgentOn(page, {
    root: "agent/",
    model: "openai-compatible:fake-model",
    baseUrl: model.baseUrl,
    key: "test-key",
    approve: "auto",
  });
  expect(created.app).toBeTruthy(); // app.json came over the bridge
  expect(created.frames).toBe(1);
  // The site runs in a hidden frame of this page, at the site's own URL.
  const frame = page.locator("iframe[title='py-agent (hidden)']");
  await expect(frame).toHaveAttribute("src", `${site.url}/agent/?embed&headless`);
  expect(await frame.evaluate((el) => el.getBoundingClientRect().width)).toBeLessThanOrEqual(1);

  const before = await page.evaluate(() => (window as any).agent.db.query("SELECT count(*) AS n FROM tags WHERE name = 'embedded-inline'"));
  expect(before).toEqual([{ n: 0 }]);
  const end = await page.evaluate(() => (window as any).agent.send("Add a tag called embedded-inline"));
  expect(end.type).toBe("turn_end");
  expect(end.reason).toBe("done");
  // The change is in the site's database, read back through the API (params bound).
  expect(await page.evaluate(() => (window as any).agent.db.query("SELECT name FROM tags WHERE name = ?", ["embedded-inline"]))).toEqual([
    { name: "embedded-inline" },
  ]);
  // onEvent saw the whole turn, in order; the model really was the fake server.
  const types = (await hostEvents(page)).map((e) => e.type);
  expect(types).toContain("user_message");
  expect(types).toContain("execution_result");
  expect(types.indexOf("user_message")).toBeLessThan(types.indexOf("execution_result"));
  expect((await hostEvents(page, "turn_end")).map((e) => e.reason)).toEqual(["done"]);
  expect((await hostEvents(page, "execution_result"))[0].output).toContain("saved");
  expect((await hostEvents(page, "assistant_reply")).at(-1).message).toBe("Saved the tag.");
  const received = await (await fetch(`${model.url}/_fake/requests`)).json();
  expect(JSON.stringify(received)).toContain("Add a tag called embedded-inline");

  // close(): the frame goes, and a later call fails instead of hanging.
  await page.evaluate(() => (window as any).agent.close());
  await expect(page.locator("iframe")).toHaveCount(0);
  const after = await page.evaluate(() =>
    (window as any).agent.db.query("SELECT 1").then(
      () => "answered",
      (error: Error) => `failed: ${error.message}`,
    ),
  );
  expect(after).toMatch(/^failed/);
  expect(errors).toEqual([]);
});

test("createAgent from a page of another origin: the framed site runs a turn, events and approvals reach the host", async ({ page }) => {
  test.setTimeout(150_000);
  const model = await fakeModelServer();
  servers.push(model);
  await scriptReplies(
    model,
    { message: "Adding the tag.", code: 'session.add(Tag(name="cross-origin"))\nprint("added")' },
    { message: "Added it.", code: "" },
  );
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  const site = await serve(DOCS); // the bookshop at /agent/ of the docs site
  // Another origin (another port) with a copy of embed.js next to its page (the file imports
  // nothing; http.server sends no Access-Control-Allow-Origin for a cross-origin import).
  const hostDir = folder({ "host.html": hostPage("./embed.js"), "embed.js": fs.readFileSync(path.join(DOCS, "agent", "embed.js"), "utf8") });
  const host = await serve(hostDir);
  expect(new URL(host.url).origin).not.toBe(new URL(site.url).origin);
  await page.goto(`${host.url}/host.html`);

  await createAgentOn(page, { root: `${site.url}/agent/`, model: "openai-compatible:fake-model", baseUrl: model.baseUrl, key: "test-key" }, { approveFn: true });
  await expect(page.locator("iframe")).toHaveAttribute("src", `${site.url}/agent/?embed&headless`);
  // The host cannot reach into the frame: the site's data stays in its own origin.
  expect(await page.evaluate(() => {
    try {
      return (document.querySelector("iframe") as HTMLIFrameElement).contentWindow!.document ? "reachable" : "none";
    } catch {
      return "blocked";
    }
  })).toBe("blocked");

  // With an approve function the site asks before it saves: the turn pauses, the function on
  // this page is asked (over postMessage), and embed.js sends its answer back with decide().
  const end = await page.evaluate(() => (window as any).agent.send("Add a tag called cross-origin"));
  expect(end.reason).toBe("paused");
  await expect.poll(async () => (await hostEvents(page, "turn_end")).map((e) => e.reason), { timeout: 30_000 }).toEqual(["paused", "done"]);
  const asked = await page.evaluate(() => (window as any).asked);
  expect(asked.length).toBe(1);
  expect(asked[0].type).toBe("approval_required");
  expect((await hostEvents(page, "approval_decision"))[0]).toMatchObject({ approved: true });
  // Events crossed origins to onEvent, and to agent.on too.
  const types = (await hostEvents(page)).map((e) => e.type);
  expect(types).toEqual(expect.arrayContaining(["user_message", "approval_required", "approval_decision", "execution_result", "assistant_reply"]));
  expect((await hostEvents(page, "execution_result"))[0].output).toContain("added");
  expect(await page.evaluate(() => (window as any).agent.db.query("SELECT name FROM tags WHERE name = 'cross-origin'"))).toEqual([{ name: "cross-origin" }]);

  await scriptReplies(model, { message: "Counting.", code: "print(len(session.scalars(select(Tag)).all()) > 0)" }, { message: "Counted.", code: "" });
  const seen = await page.evaluate(async () => {
    const w = window as any;
    const ends: any[] = [];
    const off = w.agent.on("turn_end", (event: any) => ends.push(event));
    const end = await w.agent.send("Are there tags?");
    off();
    return { ends, end };
  });
  expect(seen.end.reason).toBe("done");
  expect(seen.ends.map((e: any) => e.reason)).toEqual(["done"]);
  expect(errors).toEqual([]);
});

test("the <py-agent-chat> snippet on a plain docs page: renders, boots on the first interaction only, and a turn runs", async ({ page }) => {
  test.setTimeout(150_000);
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  const workers: string[] = [];
  page.on("worker", (worker) => workers.push(worker.url()));
  const docs = await serve(DOCS);
  await page.goto(`${docs.url}/guide.html`);
  await expect(page.locator("h1")).toHaveText("The bookshop guide");

  // The element renders the site's page in its shadow root.
  const element = page.locator("py-agent-chat");
  await expect(element).toBeVisible();
  expect((await element.boundingBox())!.height).toBeGreaterThan(300); // height: 40rem from the page's CSS
  const iframe = element.locator("iframe");
  await expect(iframe).toHaveAttribute("src", `${docs.url}/agent/?embed&lazy`);
  const chat = page.frameLocator("py-agent-chat iframe");
  await expect(chat.locator("[data-status]")).toHaveText("Not started");
  await expect(chat.locator("[data-suggestion]").first()).toBeVisible();
  // Connected: the page's theme (--py-agent-accent) reached the chat.
  const inner = page.frames().find((frame) => frame.url().includes("/agent/?embed"))!;
  await expect.poll(() => inner.evaluate(() => document.documentElement.style.getPropertyValue("--accent"))).toBe("rgb(0, 119, 85)");

  // Not before: a while later, still no Python, no service worker, no worker.
  await page.waitForTimeout(3_000);
  await expect(chat.locator("[data-status]")).toHaveText("Not started");
  expect(await inner.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length)).toBe(0);
  expect(workers).toEqual([]);

  // Events of the chat reach the page as py-agent-event.
  await page.evaluate(() => {
    (window as any).events = [];
    document.querySelector("py-agent-chat")!.addEventListener("py-agent-event", (e: any) => (window as any).events.push(e.detail));
  });
  // First interaction: type a suggestion's request in the chat; Python boots, the turn runs
  // (the bookshop's recorded demo answers, no key).
  const input = chat.locator("[data-input]");
  await input.click();
  await input.fill("How many rows does each table have?");
  await input.press("Enter");
  // The frame reloads once on this plain host (its service worker adds the headers), then boots.
  await expect
    .poll(async () => (await hostEvents(page, "turn_end")).map((e) => e.reason), { timeout: BOOT })
    .toEqual(["done"]);
  const chatNow = page.frameLocator("py-agent-chat iframe");
  await expect(chatNow.locator("[data-status]")).toHaveText("Ready", { timeout: 30_000 });
  await expect(chatNow.locator(".turn-end").last()).toHaveText(/^Done/);
  // The theme holds in the reloaded page too.
  await expect.poll(() => inner.evaluate(() => document.documentElement.style.getPropertyValue("--accent"))).toBe("rgb(0, 119, 85)");
  expect((await hostEvents(page, "execution_result")).length).toBeGreaterThan(0);
  expect((await hostEvents(page, "execution_result"))[0].error).toBeFalsy();
  expect(workers.length).toBeGreaterThan(0); // Python's worker started only now
  expect(errors).toEqual([]);
});

test("<py-agent-chat eager> boots at once, without any interaction", async ({ page }) => {
  test.setTimeout(150_000);
  const docs = await serve(folder({ "eager.html": `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Eager</title></head><body>
  <script type="module" src="agent/embed.js"></script>
  <py-agent-chat src="agent/" eager></py-agent-chat>
</body></html>
` }, { withSite: true }));
  await page.goto(`${docs.url}/eager.html`);
  await expect(page.locator("py-agent-chat iframe")).toHaveAttribute("src", `${docs.url}/agent/?embed`);
  // Nobody touches the page: Python still boots.
  await expect(page.frameLocator("py-agent-chat iframe").locator("[data-status]")).toHaveText("Ready", { timeout: BOOT });
  const ready = await page.evaluate(() => (document.querySelector("py-agent-chat") as any).agent.ready);
  expect(ready).toBe(true);
  const rows = await page.evaluate(() => (document.querySelector("py-agent-chat") as any).agent.db.query("SELECT count(*) AS n FROM tags"));
  expect(rows[0].n).toBeGreaterThanOrEqual(0);
});

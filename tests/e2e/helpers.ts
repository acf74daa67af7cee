// Shared pieces of the browser specs: a fake OpenAI-compatible model server, a
// recorder that notes any request that reaches it, and page helpers.
//
// Both servers listen on loopback only, on ports the OS picks.
import { expect, type Page } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";

export { ISOLATED_PORT, PLAIN_PORT } from "./ports";

// --- a fake model --------------------------------------------------------------------------

export type Reply = { message: string; code: string };
export type ModelRequest = { headers: http.IncomingHttpHeaders; body: any; path: string };
/** Chooses the reply to a chat-completions request (`turn` counts requests, from 0). */
export type Script = (request: ModelRequest, turn: number) => Reply | Promise<Reply>;

export interface FakeModel {
  url: string; // base URL, ending in /v1
  origin: string;
  requests: ModelRequest[];
  close(): Promise<void>;
}

/**
 * An OpenAI-compatible chat-completions server that streams `script`'s replies as
 * server-sent events, with the CORS headers a browser needs.
 */
export async function startFakeModel(script: Script): Promise<FakeModel> {
  const requests: ModelRequest[] = [];
  const server = http.createServer((req, res) => {
    res.setHeader("Access-Control-Allow-Origin", "*");
    res.setHeader("Access-Control-Allow-Headers", "*");
    res.setHeader("Access-Control-Allow-Methods", "POST, OPTIONS");
    if (req.method === "OPTIONS") return res.writeHead(204).end();
    let raw = "";
    req.on("data", (chunk) => (raw += chunk));
    req.on("end", async () => {
      if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) return res.writeHead(404).end("{}");
      const body = JSON.parse(raw || "{}");
      const request = { headers: req.headers, body, path: req.url };
      requests.push(request);
      const text = JSON.stringify(await script(request, requests.length - 1));
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
      const chunk = (delta: object, extra: object = {}) =>
        res.write(`data: ${JSON.stringify({ id: "fake", object: "chat.completion.chunk", model: body.model, choices: [{ index: 0, delta, ...extra }] })}\n\n`);
      chunk({ role: "assistant", content: "" });
      for (let i = 0; i < text.length; i += 24) {
        chunk({ content: text.slice(i, i + 24) });
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      chunk({}, { finish_reason: "stop" });
      res.write(`data: ${JSON.stringify({ id: "fake", choices: [], usage: { prompt_tokens: 100, completion_tokens: 20 } })}\n\n`);
      res.end("data: [DONE]\n\n");
    });
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}/v1`,
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () => close(server),
  };
}

/** Replies in order, then "done" (empty code) forever. */
export function scripted(...replies: Reply[]): Script {
  return (_request, turn) => replies[turn] ?? { message: "Done.", code: "" };
}

// --- a recorder: proves that nothing reached a port ----------------------------------------------

export interface Recorder {
  port: number;
  origin: string;
  hits: string[];
  close(): Promise<void>;
}

export async function startRecorder(): Promise<Recorder> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.setHeader("Access-Control-Allow-Origin", "*");
    res.setHeader("Cross-Origin-Resource-Policy", "cross-origin");
    res.end("recorded");
  });
  server.on("upgrade", (req, socket) => {
    hits.push(`UPGRADE ${req.url}`);
    socket.destroy();
  });
  // Count bare connections too: a blocked request must not even open one.
  server.on("connection", () => hits.push("TCP connection"));
  const port = await listen(server);
  return { port, origin: `http://127.0.0.1:${port}`, hits, close: () => close(server) };
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

// --- a dev server of our own (for tests that stop it) -------------------------------------------

/** The build the suite serves (playwright.config.ts reads the same variable). */
export const DIST = process.env.PY_AGENT_DIST || "web/dist";

export async function startDevServer(...flags: string[]): Promise<{ url: string; process: ChildProcess; stop(): Promise<void> }> {
  const child = spawn("python", ["tools/devserver.py", "--port", "0", "--dir", DIST, ...flags], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (data) => {
      out += data;
      const match = out.match(/at (http:\/\/[\d.]+:\d+)\//);
      if (match) resolve(match[1]);
    });
    child.on("exit", (code) => reject(new Error(`devserver exited with ${code}: ${out}`)));
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.on("exit", () => resolve());
      child.kill();
    });
  return { url, process: child, stop };
}

/** Where the specs save the screenshots a person looks at (SCREENSHOTS_DIR to change). */
export function screenshot(name: string) {
  return `${process.env.SCREENSHOTS_DIR || "test-results/screenshots"}/${name}`;
}

// --- the page ---------------------------------------------------------------------------------------

/** Open the app with test hooks (and no service worker unless asked) and wait until Python is ready. */
export async function openApp(page: Page, { base = "", query = "test&nosw" } = {}) {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${base}/?${query}`);
  await page.waitForFunction(() => (window as any).pyAgent !== undefined);
  await page.evaluate(() => (window as any).pyAgent.ready);
  await expect(page.locator("[data-status]")).toHaveText("Ready");
  return errors;
}

/** Point the app at a fake model through the settings dialog, as a person would. */
export async function useFakeModel(page: Page, model: FakeModel, { key = "", approve = "auto" } = {}) {
  await page.getByRole("button", { name: "Settings" }).click();
  const dialog = page.locator("dialog[data-settings]");
  await dialog.getByLabel("Model provider").selectOption("openai-compatible");
  await dialog.getByLabel("Model", { exact: true }).fill("fake-model");
  await dialog.getByLabel("Base URL").fill(model.url);
  await dialog.getByLabel("API key").fill(key);
  await dialog.getByLabel("Changes to the database").selectOption(approve);
  await dialog.getByRole("button", { name: "Save" }).click();
  await expect(page.locator(".notice").last()).toContainText("openai-compatible:fake-model");
}

/** Send a message through the API and wait for the turn to end; returns its turn_end event. */
export function send(page: Page, text: string) {
  return page.evaluate((text) => (window as any).pyAgent.send(text), text);
}

/** Rows of a query against the page's sql.js replica. */
export function query(page: Page, sql: string): Promise<any[]> {
  return page.evaluate((sql) => (window as any).pyAgent.db.query(sql), sql);
}

/** Run Python in the worker, outside the agent (test hook); returns the value of `result`. */
export function debugPython(page: Page, code: string): Promise<any> {
  return page.evaluate((code) => (window as any).pyAgent.debug(code), code);
}

/** Start collecting every event the page's client emits, into window.__events. */
export async function collectEvents(page: Page) {
  await page.evaluate(() => {
    (window as any).__events = [];
    (window as any).pyAgent.on("*", (event: any) => (window as any).__events.push(event));
  });
}

export function events(page: Page, type?: string): Promise<any[]> {
  return page.evaluate((type) => (window as any).__events.filter((e: any) => !type || e.type === type), type);
}

// --- runtime helpers (issue 12, browser side) ---------------------------------------------------

/**
 * Write a test-only ES module into the served build (`dist/<name>`) and run its default
 * export inside the agent worker, with the worker's global (page opened with ?test).
 * Returns what the function returned.
 */
export async function runInWorker(page: Page, name: string, source: string): Promise<any> {
  const { writeFile } = await import("node:fs/promises");
  await writeFile(`${DIST}/${name}`, source);
  return page.evaluate((url) => (window as any).__agent.debugJs(url), name);
}

/** Register `pyAgent.on("*")` before the app starts, so events of the boot itself are kept (window.__early). */
export async function collectFromStart(page: Page) {
  await page.addInitScript(() => {
    (window as any).__early = [];
    const timer = setInterval(() => {
      const api = (window as any).pyAgent;
      if (!api) return;
      clearInterval(timer);
      api.on("*", (event: any) => (window as any).__early.push(event));
    }, 0);
  });
}

export function earlyEvents(page: Page, type?: string): Promise<any[]> {
  return page.evaluate((type) => (window as any).__early.filter((e: any) => !type || e.type === type), type);
}

/** Wait for the next event of `type` the page emits (after collectEvents). */
export async function waitForEvent(page: Page, type: string, count = 1, timeout = 60_000): Promise<any> {
  await expect.poll(async () => (await events(page, type)).length, { timeout }).toBeGreaterThanOrEqual(count);
  return (await events(page, type))[count - 1];
}

/** The app's name as the served page declares it: the key of its saved record, lock and channel. */
export async function appName(page: Page, base = ""): Promise<string> {
  const html = await (await page.request.get(`${base}/index.html`)).text();
  const name = /<meta name="py-agent-schema" content="([^"]+)"/.exec(html)?.[1];
  if (!name) throw new Error("the served index.html names no py-agent-schema");
  return name;
}

// Sites built with `py-agent build` (sites.setup.ts builds them once per run) and the servers
// the specs put in front of them: `python3 -m http.server` (a host that sends no special
// headers: GitHub Pages, a docs site) and our dev server.
import { expect, type Page } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import path from "node:path";
import { DIST } from "./helpers";

/** Where the global setup builds the shared sites (beside the suite's DIST). */
export const SITES = process.env.PY_AGENT_E2E_SITES || `${path.resolve(DIST)}-sites`;
export const CLINIC = path.join(SITES, "clinic");
export const NOTES = path.join(SITES, "notes"); // the throwaway app of sites.setup.ts
export const DOCS = path.join(SITES, "docs"); // a documentation folder with the bookshop under agent/

export interface Served {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as any).port;
      server.close(() => resolve(port));
    });
  });
}

async function started(child: ChildProcess, url: string, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let exited = false;
  child.on("exit", () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${what} exited before it served ${url}`);
    try {
      const response = await fetch(url);
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not answer at ${url}`);
}

function stopper(child: ChildProcess) {
  return () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.on("exit", () => resolve());
      child.kill();
    });
}

/** `python3 -m http.server` on `dir`: no COOP/COEP, no CSP, nothing special. */
export async function plainServer(dir: string): Promise<Served> {
  const port = await freePort();
  const child = spawn("python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dir], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  await started(child, `${url}/`, "python3 -m http.server");
  return { url, port, process: child, stop: stopper(child) };
}

/** The dev server (`py-agent serve DIR`): the site's _headers on every response. */
export async function devServer(dir: string): Promise<Served> {
  const port = await freePort();
  const child = spawn("python3", ["tools/devserver.py", "--port", String(port), "--dir", dir], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  await started(child, `${url}/build.json`, "the dev server");
  return { url, port, process: child, stop: stopper(child) };
}

/** A fake model server of py_agent.testing (the public test kit) on a free port. */
export async function fakeModelServer(...flags: string[]): Promise<Served & { baseUrl: string }> {
  const port = await freePort();
  const child = spawn("python3", ["-m", "py_agent.testing.fake_server", "--port", String(port), ...flags], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  await started(child, `${url}/health`, "the fake model server");
  return { url, port, baseUrl: `${url}/v1`, process: child, stop: stopper(child) };
}

/** Queue replies on a fake model server (its /_fake/replies control endpoint). */
export async function scriptReplies(server: { url: string }, ...replies: { message: string; code: string }[]) {
  const response = await fetch(`${server.url}/_fake/replies`, { method: "POST", body: JSON.stringify(replies) });
  expect(response.ok).toBe(true);
}

/**
 * Open a site on a host that may send no headers, and wait until Python is ready. On such a
 * host the first load registers the service worker and reloads once (guard.js); `loads`
 * counts the page loads it took.
 */
export async function openSite(page: Page, url: string, query = "test") {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  let loads = 0;
  const workersBeforeSecure: string[] = [];
  page.on("load", () => (loads += 1));
  page.on("worker", (worker) => {
    if (loads < 1) workersBeforeSecure.push(worker.url());
  });
  await page.goto(`${url}/?${query}`);
  await page.waitForFunction(() => (window as any).pyAgent !== undefined && (window as any).__agent?.worker, null, { timeout: 90_000 });
  await page.evaluate(() => (window as any).pyAgent.ready);
  await expect(page.locator("[data-status]")).toHaveText("Ready");
  return { errors, loads: () => loads, workersBeforeSecure };
}

// Local model servers (Ollama, llama.cpp's server, vLLM, LM Studio) that the page cannot use:
// the diagnosis it gives and the exact fix, per server (web/app/diagnose.js, with the table
// py_agent/local_servers.py that the build writes to local-servers.json).
//
// fetch() rejects with the same TypeError whether nothing listens or the server answered
// without CORS headers; the page tells the two apart with a no-cors probe, which works only
// because the site is isolated with COEP `credentialless`. These tests use real servers on
// this machine: one of our own that answers but sends no CORS headers (as Ollama does for an
// origin it does not allow), the test kit's fake server with --no-cors, and a port where
// nothing listens; a plain-http server on the machine's network address (not localhost), and
// an https page (routed) calling it, for the page's CSP and for mixed content.
import { expect, test, type Page } from "@playwright/test";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { DIST, openApp } from "./helpers";
import { fakeModelServer, freePort } from "./sites";

type Server = { id: string; label: string; base_url: string; start: string; cors_default: string; cors_fix: string };
const TABLE: Server[] = JSON.parse(fs.readFileSync(path.join(DIST, "local-servers.json"), "utf8"));
const KINDS = ["ollama", "llamacpp", "vllm", "lmstudio"] as const;
const server = (id: string) => TABLE.find((row) => row.id === id)!;

/** The exact fix each server's docs give for a page at `origin` (written here, not read from the table). */
const FIXES: Record<(typeof KINDS)[number], (origin: string) => string[]> = {
  ollama: (origin) => [`OLLAMA_ORIGINS=${origin} ollama serve`, `launchctl setenv OLLAMA_ORIGINS "${origin}"`, `Environment="OLLAMA_ORIGINS=${origin}"`],
  llamacpp: (origin) => [`--cors-origins ${origin}`],
  vllm: (origin) => [`--allowed-origins '["${origin}"]'`],
  lmstudio: () => ["lms server start --cors", "Enable CORS"],
};
const STARTS: Record<(typeof KINDS)[number], string> = {
  ollama: "ollama serve",
  llamacpp: "llama-server -m model.gguf --port 8080",
  vllm: "vllm serve MODEL --port 8000",
  lmstudio: "lms server start",
};

interface NoCors {
  origin: string; // http://host:port
  baseUrl: string; // .../v1
  hits: string[]; // "METHOD /path origin=..." for every request that reached it
  close(): Promise<void>;
}

/**
 * An OpenAI-compatible server that answers but sends no CORS headers, like Ollama for an
 * origin outside OLLAMA_ORIGINS (403, no Access-Control-* headers) or LM Studio with CORS off.
 */
async function noCorsServer(host = "127.0.0.1"): Promise<NoCors> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url} origin=${req.headers.origin ?? "-"}`);
    req.resume();
    if (req.headers.origin) return res.writeHead(403, { "Content-Type": "text/plain" }).end("Forbidden");
    if (req.url?.endsWith("/models")) return res.writeHead(200, { "Content-Type": "application/json" }).end('{"object":"list","data":[{"id":"llama3.2"}]}');
    res.writeHead(404, { "Content-Type": "text/plain" }).end("404 page not found");
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const origin = `http://${host}:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    baseUrl: `${origin}/v1`,
    hits,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on loopback where nothing listens. */
async function closedPort(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}/v1`;
}

/** The machine's own non-loopback IPv4 address (a server "on the network", not localhost). */
function networkAddress(): string | null {
  const found = Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal);
  return found ? found.address : null;
}

/** diagnoseFailure() of the page's own diagnose.js, for a chat-completions request to `baseUrl`. */
function diagnose(page: Page, baseUrl: string, provider = "", pageOrigin?: string) {
  return page.evaluate(
    async ({ baseUrl, provider, pageOrigin }) => {
      const { diagnoseFailure } = await import(new URL("diagnose.js", document.baseURI).href);
      const options: any = { baseUrl, provider };
      if (pageOrigin) options.pageOrigin = pageOrigin;
      return diagnoseFailure(new URL(`${baseUrl}/chat/completions`), options);
    },
    { baseUrl, provider, pageOrigin },
  );
}

/** What a plain fetch() of the chat endpoint does from the page: "ok", or the error it rejects with. */
function plainFetch(page: Page, baseUrl: string) {
  return page.evaluate(async (baseUrl) => {
    try {
      const response = await fetch(`${baseUrl}/chat/completions`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: "hi" }] }),
        credentials: "omit",
      });
      return `ok ${response.status}`;
    } catch (error) {
      return `${(error as Error).name}: ${(error as Error).message}`;
    }
  }, baseUrl);
}

/** Point the app at `baseUrl` (no key, as for a local server), send one message, return the error note. */
async function failedTurn(page: Page, baseUrl: string, text: string) {
  await page.evaluate((baseUrl) => (window as any).pyAgent.configure({ provider: "openai-compatible", model: "llama3.2", baseUrl, key: "", approve: "auto" }), baseUrl);
  const notes = await page.locator(".note.error").count();
  await page.getByPlaceholder(/Ask something/).fill(text);
  await page.keyboard.press("Enter");
  await expect(page.locator(".note.error")).toHaveCount(notes + 1);
  await expect(page.locator(".turn-end").last()).toHaveText(/error/i);
  return page.locator(".note.error").last();
}

test("the app: a server without CORS is diagnosed as CORS, a closed port as 'nothing answered'", async ({ page, baseURL }) => {
  const pageOrigin = new URL(baseURL!).origin;
  const model = await noCorsServer();
  try {
    await openApp(page);
    // The premise: the page is cross-origin isolated, and a plain fetch() fails with the
    // same TypeError for a server that answered as for one that does not run.
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    const down = await closedPort();
    const [corsError, downError] = [await plainFetch(page, model.baseUrl), await plainFetch(page, down)];
    expect(corsError).toMatch(/^TypeError/);
    expect(downError).toBe(corsError);
    expect(model.hits).toContain(`OPTIONS /v1/chat/completions origin=${pageOrigin}`); // it answered the preflight (403)

    // A real turn through the worker and the fetch shim, to the server without CORS.
    model.hits.length = 0;
    const cors = await failedTurn(page, model.baseUrl, "hello, local model");
    // (diagnose.js: on a port no known server uses, the generic fix for the page's origin)
    await expect(cors).toContainText(`${model.origin} is running but does not allow requests from ${pageOrigin}`);
    await expect(cors).not.toContainText(/could not reach|nothing answered/i);
    await expect(cors.locator(".hint")).toContainText(`Access-Control-Allow-Origin: ${pageOrigin}`);
    // Both the request (its preflight) and the no-cors probe reached the server.
    expect(model.hits.some((hit) => hit.startsWith("OPTIONS /v1/chat/completions"))).toBe(true);
    expect(model.hits).toContain("GET /v1/chat/completions origin=-");

    // Nothing listening: "could not reach", and check the base URL / that it runs.
    const gone = await failedTurn(page, down, "hello again");
    await expect(gone).toContainText(`Nothing answered at ${new URL(down).origin}`);
    await expect(gone).not.toContainText("does not allow requests");
    await expect(gone.locator(".hint")).toContainText(/check the base URL and that the server is running/i);
  } finally {
    await model.close();
  }
});

test("diagnose.js in the isolated page: the exact CORS fix, or how to start it, per server", async ({ page, baseURL }) => {
  const pageOrigin = new URL(baseURL!).origin;
  const model = await noCorsServer();
  const kit = await fakeModelServer("--format", "openai", "--no-auth", "--no-cors"); // the public test kit's server
  const down = await closedPort();
  try {
    // Any page of the site will do (same origin, same headers): no need to boot Python.
    await page.goto("/build.json");
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    // The test kit's --no-cors server really sends no CORS headers: a plain fetch fails.
    expect(await plainFetch(page, kit.baseUrl)).toMatch(/^TypeError/);

    for (const kind of KINDS) {
      const row = server(kind);
      for (const url of [model.baseUrl, kit.baseUrl]) {
        const origin = new URL(url).origin;
        const found = await diagnose(page, url, kind);
        expect(found.kind, `${kind} at ${url}`).toBe("cors");
        expect(found.server).toBe(kind);
        expect(found.message).toBe(`${row.label} at ${origin} is running but does not allow requests from ${pageOrigin} (${row.label} ${row.cors_default}).`);
        expect(found.message).not.toMatch(/could not reach/i);
        expect(found.hint).toBe(row.cors_fix.replaceAll("{origin}", pageOrigin));
        for (const fix of FIXES[kind](pageOrigin)) expect(found.hint, kind).toContain(fix);
      }

      const gone = await diagnose(page, down, kind);
      expect(gone.kind, `${kind} at ${down}`).toBe("unreachable");
      expect(gone.message).toBe(`Nothing answered at ${new URL(down).origin}: ${row.label} does not seem to be running there.`);
      expect(gone.hint).toBe(`start it: ${row.start}; check the port in the base URL (${down})`);
      expect(gone.hint).toContain(STARTS[kind]);
      expect(gone.hint).not.toContain("CORS");
    }

    // No provider given: the server is the one whose default port the URL uses; unknown
    // servers get the generic fix (Access-Control-Allow-Origin for this page).
    const byPort = await page.evaluate(async (pageOrigin) => {
      const { describeFailure, localServers } = await import(new URL("diagnose.js", document.baseURI).href);
      const table = await localServers();
      return ["http://localhost:11434/v1", "http://localhost:8080/v1", "http://127.0.0.1:8000/v1", "http://localhost:1234/v1"].map(
        (url) => describeFailure(table, url, "cors", { pageOrigin }).server,
      );
    }, pageOrigin);
    expect(byPort).toEqual([...KINDS]);
    const unknown = await diagnose(page, model.baseUrl);
    expect(unknown.kind).toBe("cors");
    expect(unknown.server).toBe(null);
    expect(unknown.message).toBe(`${model.origin} at ${model.origin} is running but does not allow requests from ${pageOrigin}.`);
    expect(unknown.hint).toContain(`Access-Control-Allow-Origin: ${pageOrigin}`);
    const unknownDown = await diagnose(page, down);
    expect(unknownDown.kind).toBe("unreachable");
    expect(unknownDown.hint).toContain("check the base URL and that the server is running");
  } finally {
    await Promise.all([model.close(), kit.stop()]);
  }
});

test("a plain-http server on the network (not localhost): the page's CSP lets the request out", async ({ page, baseURL }) => {
  const address = networkAddress();
  expect(address, "this machine has a non-loopback IPv4 address").not.toBeNull();
  const pageOrigin = new URL(baseURL!).origin;
  const model = await noCorsServer(address!);
  try {
    await page.goto("/build.json");
    const violations: string[] = [];
    page.on("console", (message) => /Content Security Policy/i.test(message.text()) && violations.push(message.text()));
    const csp = (await (await page.request.get("/build.json")).headers())["content-security-policy"];
    expect(csp).toMatch(/connect-src [^;]*\bhttp:/);

    // Not refused by the page's policy: the request reached the server, which answered without CORS.
    expect(await plainFetch(page, model.baseUrl)).toMatch(/^TypeError/);
    expect(model.hits.some((hit) => hit.startsWith("OPTIONS /v1/chat/completions"))).toBe(true);
    const found = await diagnose(page, model.baseUrl, "ollama");
    expect(found.kind).toBe("cors");
    expect(found.hint).toContain(`OLLAMA_ORIGINS=${pageOrigin} ollama serve`);
    expect(violations).toEqual([]);
  } finally {
    await model.close();
  }
});

test("an https page and a plain-http server off this machine: mixed content, with its fixes", async ({ page }) => {
  const address = networkAddress();
  expect(address, "this machine has a non-loopback IPv4 address").not.toBeNull();
  const model = await noCorsServer(address!);
  const site = "https://agent.example";
  try {
    // The site over https (routed to the build, with the headers a host sends).
    const headers = (await (await page.request.get("/build.json")).headers()) as Record<string, string>;
    const keep = ["cross-origin-opener-policy", "cross-origin-embedder-policy", "cross-origin-resource-policy", "content-security-policy"];
    await page.route(`${site}/**`, async (route) => {
      const name = new URL(route.request().url()).pathname.replace(/^\/+/, "") || "build.json";
      const file = path.join(DIST, name);
      if (!fs.existsSync(file)) return route.fulfill({ status: 404, body: "not found" });
      const type = name.endsWith(".js") ? "text/javascript" : "application/json";
      await route.fulfill({ status: 200, path: file, headers: { ...Object.fromEntries(keep.map((k) => [k, headers[k]])), "content-type": type } });
    });
    await page.goto(`${site}/build.json`);
    expect(await page.evaluate(() => [location.origin, isSecureContext, crossOriginIsolated])).toEqual([site, true, true]);

    // The browser refuses the call before it leaves: nothing reaches the server.
    expect(await plainFetch(page, model.baseUrl)).toMatch(/^TypeError/);
    expect(model.hits).toEqual([]);

    for (const kind of ["ollama", ""]) {
      const found = await diagnose(page, model.baseUrl, kind);
      expect(found.kind, `provider ${kind || "(none)"}`).toBe("mixed_content");
      expect(found.message).toBe(`This page is served over https, so the browser does not let it call ${model.origin} over plain http.`);
      expect(found.message).not.toMatch(/could not reach/i);
      expect(found.hint).toContain("http://localhost:PORT");
      expect(found.hint).toContain("behind https");
    }
    // The probe was not even tried (it could only have failed, as "unreachable").
    expect(model.hits).toEqual([]);

    // A server on this machine is fine from https (loopback is trustworthy): not mixed content.
    // A public site needs the person's permission to reach this machine (Chromium's Local
    // Network Access): without it the call fails as if nothing ran there, and the diagnosis
    // says what is missing; once it has it, the probe tells "no CORS" from "not running" again.
    const local = await noCorsServer();
    try {
      const blocked = await diagnose(page, local.baseUrl, "lmstudio");
      expect(blocked.kind).toBe("local_network");
      expect(blocked.message).toContain("needs your permission");
      expect(blocked.message).not.toMatch(/nothing answered|not running/i);
      expect(blocked.hint).toContain("allow local network access");
      await page.context().grantPermissions(["local-network-access"], { origin: site });
      const found = await diagnose(page, local.baseUrl, "lmstudio");
      expect(found.kind).toBe("cors");
      expect(found.hint).toContain("lms server start --cors");
      expect(found.message).toContain(`does not allow requests from ${site}`);
    } finally {
      await local.close();
    }
  } finally {
    await model.close();
  }
});

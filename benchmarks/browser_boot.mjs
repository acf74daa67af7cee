// Browser boot benchmark: how long until the agent is ready, against a bare loadPyodide()
// of the same site, and what it costs in bytes and memory. Run by `python build.py bench`:
//
//   node benchmarks/browser_boot.mjs [--runs 3] [--port 0]
//
// Serves the build (PY_AGENT_DIST or web/dist) with tools/devserver.py (real headers:
// COOP/COEP, the worker's CSP, brotli, caching) and drives Debian's Chromium through
// Playwright, all in ONE browser run, alternating the order of bare and agent loads:
//   bare cold   bench/bare.html in a fresh context (empty HTTP cache): loadPyodide(), "1 + 1";
//               also with stock Pyodide's standard library (?stdlib=stock), for reference
//   bare warm   bare.html again in the same context (HTTP cache filled)
//   agent cold  bench/agent.html in a fresh context: the app's worker boots from the site's
//               packages, opens the demo database and answers `ready`; then (not timed) a
//               background worker makes the boot snapshot, which the page keeps in Cache Storage
//   agent warm  agent.html again in that context: the snapshot is restored
//   agent warm, no snapshot   ?nosnapshot: HTTP cache filled, boot from the packages
// Then one demo request to its turn_end (the time to the first completed demo turn).
// Times run from navigation start to the worker's `ready`; medians of --runs.
// Bytes are resource-timing transferSize of the page and of its worker. Memory is the
// worker's WebAssembly memory when ready, and performance.measureUserAgentSpecificMemory()
// for the worker after the first turn.
// No route() handlers: they would disable the HTTP cache (see shared/DESIGN.md).
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "@playwright/test";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const runs = Number(opt("runs", 3));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const dist = process.env.PY_AGENT_DIST ? path.resolve(process.env.PY_AGENT_DIST) : path.join(root, "web/dist");
const TARGET = { warm: 1.2, cold: 1.6, mb: 8 };

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mb = (b) => `${(b / 1e6).toFixed(2)} MB`;
const spread = (xs) => (xs.length > 1 ? ` [${xs.map((x) => (x / 1000).toFixed(2)).join(", ")}]` : "");

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn("python3", [path.join(root, "tools/devserver.py"), "--port", opt("port", "0"), "--dir", dist], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    proc.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/at (http:\/\/[^/\s]+)\//);
      if (m) resolve({ proc, base: m[1] });
    });
    proc.on("exit", (code) => reject(new Error(`devserver exited (${code}): ${out}`)));
  });
}

async function load(context, url) {
  const page = await context.newPage();
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.__bench, null, { timeout: 180_000, polling: 20 });
    const result = await page.evaluate(() => window.__bench);
    if (result.type !== "ready") throw new Error(`${url}: ${result.message}`);
    return { ...result, bytes: result.pageBytes + result.workerBytes };
  } finally {
    await page.close();
  }
}

/** The app itself (index.html): navigation start to `pyAgent.ready`, and how Python booted. */
async function loadApp(context, url) {
  const page = await context.newPage();
  try {
    await page.addInitScript(() => {
      const timer = setInterval(() => {
        const api = window.pyAgent;
        if (!api) return;
        clearInterval(timer);
        api.on("booted", (e) => (window.__booted = e));
        api.on("boot_snapshot", (e) => (window.__snapshot = e));
        api.ready.then(() => (window.__readyAt = performance.now()));
      }, 1);
    });
    await page.goto(url);
    await page.waitForFunction(() => window.__readyAt, null, { timeout: 180_000, polling: 20 });
    const result = await page.evaluate(() => ({ readyAt: window.__readyAt, booted: window.__booted }));
    // Let the page make and keep the snapshot for the next visit (in the background).
    if (result.booted?.snapshot === "wanted") await page.waitForFunction(() => window.__snapshot, null, { timeout: 180_000, polling: 100 });
    return result;
  } finally {
    await page.close();
  }
}

const { proc, base } = await startServer();
let browser;
let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--enable-blink-features=ForceEagerMeasureMemory"],
  });
  console.log(`Chromium ${browser.version()}, serving ${path.relative(root, dist) || dist} at ${base}, ${runs} runs each (medians)`);
  const r = { bareCold: [], bareWarm: [], stock: [], cold: [], warm: [], warmNoSnap: [], appCold: [], appWarm: [] };
  const withContext = async (fn) => {
    const context = await browser.newContext();
    try {
      return await fn(context);
    } finally {
      await context.close();
    }
  };
  const measureBare = () =>
    withContext(async (context) => {
      r.bareCold.push(await load(context, `${base}/bench/bare.html`));
      r.bareWarm.push(await load(context, `${base}/bench/bare.html`));
      r.stock.push(await load(context, `${base}/bench/bare.html?stdlib=stock`));
    });
  const measureAgent = () =>
    withContext(async (context) => {
      r.cold.push(await load(context, `${base}/bench/agent.html?turn`));
      r.warm.push(await load(context, `${base}/bench/agent.html?turn&memory`));
      r.warmNoSnap.push(await load(context, `${base}/bench/agent.html?turn&nosnapshot`));
    });
  const measureApp = () =>
    withContext(async (context) => {
      r.appCold.push(await loadApp(context, `${base}/?nosw`));
      r.appWarm.push(await loadApp(context, `${base}/?nosw`));
    });
  await withContext((context) => load(context, `${base}/bench/bare.html`)); // browser start-up, first context
  // The step benchmark (benchmarks/core.py) inside the agent's own worker in Chromium.
  const steps = await withContext((context) => load(context, `${base}/bench/agent.html?steps&nosnapshot`));
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      await measureBare();
      await measureAgent();
    } else {
      await measureAgent();
      await measureBare();
    }
    await measureApp();
    process.stdout.write(`  run ${i + 1}/${runs} done\n`);
  }

  const at = (rs, field = "readyAt") => median(rs.map((x) => x[field]));
  const list = (rs, field = "readyAt") => spread(rs.map((x) => x[field]));
  const bytes = (rs) => median(rs.map((x) => x.bytes));
  const bare = { cold: at(r.bareCold), warm: at(r.bareWarm) };
  console.log("\nTimes from navigation start to ready (runs in brackets).");
  console.log(`bare loadPyodide(), this site     cold ${secs(bare.cold)}${list(r.bareCold)}  ${mb(bytes(r.bareCold))}`);
  console.log(`                                  warm ${secs(bare.warm)}${list(r.bareWarm)}  ${mb(bytes(r.bareWarm))}`);
  console.log(`bare loadPyodide(), stock stdlib  warm ${secs(at(r.stock))}  (reference)`);
  const row = (label, rs, against) => {
    const t = at(rs);
    console.log(`${label} ${secs(t)}${list(rs)}  = ${(t / against).toFixed(2)}× bare  ${mb(bytes(rs))} transferred`);
    return t;
  };
  console.log("\nagent ready (Python, SQLAlchemy, pydantic, py_agent, the demo schema, the database open)");
  const cold = row("  cold (boot from the packages)                   ", r.cold, bare.cold);
  const warm = row("  warm (snapshot restored)                        ", r.warm, bare.warm);
  row("  warm, no snapshot (HTTP cache only)             ", r.warmNoSnap, bare.warm);
  console.log(`  warm ÷ bare cold (the issue's yardstick): ${(warm / bare.cold).toFixed(2)}×`);
  const froms = r.warm.map((x) => x.booted?.from);
  if (froms.some((f) => f !== "snapshot")) console.log(`  NOTE: some warm loads did not restore: ${JSON.stringify(r.warm.map((x) => [x.booted?.from, x.booted?.rejected]))}`);
  console.log(`  worker booted (before the database): cold ${secs(at(r.cold, "bootedAt"))}, warm ${secs(at(r.warm, "bootedAt"))}`);
  const stages = (rs) => Object.keys(rs[0].booted?.timings || {}).map((k) => `${k} ${secs(median(rs.map((x) => x.booted.timings[k])))}`).join(", ");
  console.log(`  worker stages, cold: ${stages(r.cold)}`);
  console.log(`  worker stages, warm: ${stages(r.warm)}`);
  // The worker's clock starts when it does: where that is on the page's clock.
  const workerStart = (rs) => median(rs.map((x) => x.booted.timeOrigin - x.pageTimeOrigin));
  console.log(`  the worker started at: cold ${secs(workerStart(r.cold))}, warm ${secs(workerStart(r.warm))} (navigation start = 0)`);
  console.log(`  snapshot: ${mb(median(r.cold.map((x) => x.snapshotBytes)))} kept in Cache Storage (kept: ${r.cold.map((x) => x.kept).join(", ")}), ` +
    `made by the background worker in ${secs(median(r.cold.map((x) => x.snapshotMs)))} after the cold visit's turn` +
    (r.cold.some((x) => x.snapshotError) ? ` (errors: ${r.cold.map((x) => x.snapshotError).join(", ")})` : ""));
  console.log(`  background worker stages: ${Object.keys(r.cold[0].snapshotTimings || {}).map((k) => `${k} ${secs(median(r.cold.map((x) => x.snapshotTimings?.[k])))}`).join(", ")}`);
  console.log(`\nthe app's page (index.html), navigation start to "Ready": cold ${secs(at(r.appCold))}${list(r.appCold)}, ` +
    `second visit ${secs(at(r.appWarm))}${list(r.appWarm)} (Python from: ${r.appWarm.map((x) => x.booted?.from).join(", ")})`);
  console.log("\nfirst demo turn (\"How many rows are in each table?\"), navigation start to turn_end");
  for (const [label, rs] of [["cold", r.cold], ["warm", r.warm], ["warm, no snapshot", r.warmNoSnap]]) {
    console.log(`  ${label.padEnd(18)} ${secs(at(rs, "turnEndAt"))}  (turn itself ${secs(median(rs.map((x) => x.turnEndAt - x.readyAt)))}, ${rs[0].turn})`);
  }
  console.log("\nper-step overhead inside the agent worker in Chromium (benchmarks/core.py run through the test hook):");
  console.log(steps.steps.trimEnd().split("\n").map((l) => `  ${l}`).join("\n"));
  const wasm = (rs) => median(rs.map((x) => x.booted?.wasmMemory));
  console.log(`\nmemory: Python's WebAssembly memory at ready ${mb(wasm(r.cold))} cold, ${mb(wasm(r.warm))} warm; ` +
    `boot peak (memory + snapshot + site files held at once) ${mb(median(r.cold.map((x) => x.booted?.peakMemory)))} cold, ${mb(median(r.warm.map((x) => x.booted?.peakMemory)))} warm; ` +
    `worker after the first turn (measureUserAgentSpecificMemory) ${mb(median(r.warm.map((x) => x.memory)))}` +
    (r.warm[0].memoryError ? ` (${r.warm[0].memoryError})` : ""));
  const coldBytes = bytes(r.cold);
  const verdict = (ok) => (ok ? "met" : "NOT met");
  // On a shared, busy machine the fastest run is the least disturbed one: ratios of minima too.
  const best = (rs, field = "readyAt") => Math.min(...rs.map((x) => x[field]));
  console.log(`\nbest runs: bare cold ${secs(best(r.bareCold))}, bare warm ${secs(best(r.bareWarm))}; agent cold ${secs(best(r.cold))} ` +
    `(${(best(r.cold) / best(r.bareCold)).toFixed(2)}× bare cold), warm ${secs(best(r.warm))} (${(best(r.warm) / best(r.bareWarm)).toFixed(2)}× bare warm, ` +
    `${(best(r.warm) / best(r.bareCold)).toFixed(2)}× bare cold); app page cold ${secs(best(r.appCold))}, second visit ${secs(best(r.appWarm))}`);
  console.log(`\ntargets: warm ${(warm / bare.warm).toFixed(2)}× bare warm, ${(warm / bare.cold).toFixed(2)}× bare cold (≤ ${TARGET.warm}×: ${verdict(warm / bare.cold <= TARGET.warm)}); ` +
    `cold ${(cold / bare.cold).toFixed(2)}× (≤ ${TARGET.cold}×: ${verdict(cold / bare.cold <= TARGET.cold)}); ` +
    `cold transfer ${mb(coldBytes)} (≤ ${TARGET.mb} MB: ${verdict(coldBytes <= TARGET.mb * 1e6)})`);
} catch (error) {
  console.error(`browser benchmark failed: ${error.message}`);
  exitCode = 1;
} finally {
  if (browser) await browser.close();
  proc.kill();
}
process.exit(exitCode);

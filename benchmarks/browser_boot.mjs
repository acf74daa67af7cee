// Browser boot benchmark: how long until the agent is ready, compared with a bare
// loadPyodide(), and how many bytes that costs. Run by `python build.py bench`:
//
//   node benchmarks/browser_boot.mjs [--runs 3] [--port 0] [--mode all|micropip,direct,zipimport]
//
// Serves web/dist/ with tools/devserver.py (real headers: COOP/COEP, CSP, brotli, caching)
// and drives Debian's Chromium (/usr/bin/chromium) through Playwright, in ONE browser run:
//   bare cold  = bench/bare.html (a module worker calling loadPyodide()) in a fresh context,
//                with the site's python_stdlib.zip and with stock Pyodide's (?stdlib=stock)
//   agent cold = bench/agent.html in a fresh context (empty HTTP cache): Python up, wheels
//                installed, SQLAlchemy + py_agent imported, the demo schema created; three
//                install methods (see bench/agent.worker.js): micropip, direct, zipimport
//   agent warm = agent.html again in the same context (HTTP cache filled by the cold load)
// Times are from navigation start to the worker's "ready" message; medians of --runs.
// Bytes are the resource-timing transferSize of every fetch of the page and its worker.
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
const modes = opt("mode", "all") === "all" ? ["micropip", "direct", "zipimport"] : opt("mode").split(",");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const TARGET_RATIO = 1.2;
const TARGET_MB = 8;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mb = (b) => `${(b / 1e6).toFixed(2)} MB`;

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn("python3", [path.join(root, "tools/devserver.py"), "--port", opt("port", "0"), "--dir", (process.env.PY_AGENT_DIST ? path.resolve(process.env.PY_AGENT_DIST) : path.join(root, "web/dist"))], {
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
    await page.waitForFunction(() => window.__bench, null, { timeout: 120_000, polling: 20 });
    const result = await page.evaluate(() => window.__bench);
    if (result.type !== "ready") throw new Error(`${url}: ${result.message}`);
    const bytes = result.resources.reduce((sum, r) => sum + (r.transferSize || 0), 0);
    const decoded = result.resources.reduce((sum, r) => sum + (r.decodedBodySize || 0), 0);
    return { ...result, bytes, decoded, requests: result.resources.length };
  } finally {
    await page.close();
  }
}

const { proc, base } = await startServer();
const otherOrigin = base.replace("127.0.0.1", "localhost");
let browser;
let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--headless"],
  });
  console.log(`Chromium ${browser.version()}, serving web/dist at ${base}, ${runs} runs each (medians)`);
  const bare = { site: [], stock: [] };
  const agent = Object.fromEntries(modes.map((m) => [m, { cold: [], warm: [] }]));
  let csp = null;
  const fresh = async (url) => {
    const context = await browser.newContext();
    try {
      return await load(context, url);
    } finally {
      await context.close();
    }
  };
  const measureBare = async () => {
    bare.site.push(await fresh(`${base}/bench/bare.html`));
    bare.stock.push(await fresh(`${base}/bench/bare.html?stdlib=stock`));
  };
  // Warm the browser up once (process start-up, first context), then alternate the order of
  // bare and agent loads between runs so neither always goes first.
  await fresh(`${base}/bench/bare.html`);
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) await measureBare();
    for (const mode of modes) {
      const context = await browser.newContext();
      const probe = i === 0 ? `&cspProbe=${encodeURIComponent(otherOrigin + "/wheels/manifest.json")}` : "";
      const cold = await load(context, `${base}/bench/agent.html?mode=${mode}${probe}`);
      if (cold.csp) csp = cold.csp;
      agent[mode].cold.push(cold);
      agent[mode].warm.push(await load(context, `${base}/bench/agent.html?mode=${mode}`));
      await context.close();
    }
    if (i % 2 === 1) await measureBare();
    process.stdout.write(`  run ${i + 1}/${runs} done\n`);
  }

  const at = (rs) => median(rs.map((r) => r.readyAt));
  const bytes = (rs) => median(rs.map((r) => r.bytes));
  const bareT = at(bare.site);
  const stockT = at(bare.stock);
  const bareWorker = median(bare.site.map((r) => r.timings.pyodide));
  console.log("\nTimes are from navigation start to the worker's ready message.");
  console.log(`bare loadPyodide(), this site's stdlib   ${secs(bareT).padStart(8)}   ${mb(bytes(bare.site))} transferred   (loadPyodide() call alone ${secs(bareWorker)})`);
  console.log(`bare loadPyodide(), stock Pyodide stdlib ${secs(stockT).padStart(8)}   ${mb(bytes(bare.stock))} transferred   (loadPyodide() call alone ${secs(median(bare.stock.map((r) => r.timings.pyodide)))})`);
  const label = { micropip: "micropip.install (what web/app/worker.js does)", direct: "pyodide.loadPackage(wheel URLs), fetched during boot", zipimport: "one zip on sys.path (zipimport), fetched during boot" };
  for (const mode of modes) {
    const { cold, warm } = agent[mode];
    const steps = (rs) => Object.keys(rs[0].timings).map((k) => `${k} ${secs(median(rs.map((r) => r.timings[k])))}`).join(", ");
    const ratios = (t) => `${(t / bareT).toFixed(2)}× bare, ${(t / stockT).toFixed(2)}× stock bare`;
    console.log(`\nagent ready via ${label[mode] || mode}${cold[0].demo ? "" : " (py_agent.demo missing: SQLAlchemy only)"}`);
    console.log(`  cold  ${secs(at(cold)).padStart(8)}  (${ratios(at(cold))})   ${mb(bytes(cold))} transferred, ${mb(median(cold.map((r) => r.decoded)))} decoded, ${cold[0].requests} requests`);
    console.log(`  warm  ${secs(at(warm)).padStart(8)}  (${ratios(at(warm))})   ${mb(bytes(warm))} transferred`);
    console.log(`  worker steps, cold: ${steps(cold)}`);
    console.log(`  worker steps, warm: ${steps(warm)}`);
  }
  if (csp) console.log(`\nworker CSP: a fetch to ${otherOrigin} from the agent worker was ${csp}`);
  if (agent.micropip) {
    const ratio = at(agent.micropip.cold) / bareT;
    const coldBytes = bytes(agent.micropip.cold);
    console.log(`\ntargets (micropip, as the app does it): cold/bare ${ratio.toFixed(2)}× (target ≤ ${TARGET_RATIO}×: ${ratio <= TARGET_RATIO ? "met" : "NOT met"}); ` +
      `cold transfer ${mb(coldBytes)} (target ≤ ${TARGET_MB} MB: ${coldBytes <= TARGET_MB * 1e6 ? "met" : "NOT met"})`);
  }
} catch (error) {
  console.error(`browser benchmark failed: ${error.message}`);
  exitCode = 1;
} finally {
  if (browser) await browser.close();
  proc.kill();
}
process.exit(exitCode);

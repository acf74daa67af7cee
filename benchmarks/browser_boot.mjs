// Browser boot benchmark: how long until the agent is ready, compared with a bare
// loadPyodide(), and how many bytes that costs. Run by `python build.py bench`:
//
//   node benchmarks/browser_boot.mjs [--runs 3] [--port 0] [--mode micropip|direct|both]
//
// Serves web/dist/ with tools/devserver.py (real headers: COOP/COEP, CSP, brotli, caching)
// and drives Debian's Chromium (/usr/bin/chromium) through Playwright, in ONE browser run:
//   bare cold  = bench/bare.html (a module worker calling loadPyodide()) in a fresh context
//   agent cold = bench/agent.html in a fresh context (empty HTTP cache): Python up, wheels
//                installed, SQLAlchemy + py_agent imported, the demo schema created
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
const modes = opt("mode", "both") === "both" ? ["micropip", "direct"] : [opt("mode")];
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
    const proc = spawn("python3", [path.join(root, "tools/devserver.py"), "--port", opt("port", "0"), "--dir", path.join(root, "web/dist")], {
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
  const bare = [];
  const agent = Object.fromEntries(modes.map((m) => [m, { cold: [], warm: [] }]));
  let csp = null;
  for (let i = 0; i < runs; i++) {
    let context = await browser.newContext();
    bare.push(await load(context, `${base}/bench/bare.html`));
    await context.close();
    for (const mode of modes) {
      context = await browser.newContext();
      const probe = i === 0 ? `&cspProbe=${encodeURIComponent(otherOrigin + "/wheels/manifest.json")}` : "";
      const cold = await load(context, `${base}/bench/agent.html?mode=${mode}${probe}`);
      if (cold.csp) csp = cold.csp;
      agent[mode].cold.push(cold);
      agent[mode].warm.push(await load(context, `${base}/bench/agent.html?mode=${mode}`));
      await context.close();
    }
    process.stdout.write(`  run ${i + 1}/${runs} done\n`);
  }

  const bareT = median(bare.map((r) => r.readyAt));
  console.log(`\nbare loadPyodide() cold         ${secs(bareT).padStart(8)}   ${mb(median(bare.map((r) => r.bytes)))} transferred`);
  let worstRatio = 0;
  let coldBytes = 0;
  for (const mode of modes) {
    const { cold, warm } = agent[mode];
    const coldT = median(cold.map((r) => r.readyAt));
    const warmT = median(warm.map((r) => r.readyAt));
    const steps = (rs) => Object.keys(rs[0].timings).map((k) => `${k} ${secs(median(rs.map((r) => r.timings[k])))}`).join(", ");
    coldBytes = Math.max(coldBytes, median(cold.map((r) => r.bytes)));
    worstRatio = Math.max(worstRatio, mode === "micropip" ? coldT / bareT : 0);
    console.log(`\nagent ready, ${mode} install${cold[0].demo ? "" : " (py_agent.demo missing: SQLAlchemy only)"}`);
    console.log(`  cold  ${secs(coldT).padStart(8)}  = ${(coldT / bareT).toFixed(2)}× bare   ${mb(median(cold.map((r) => r.bytes)))} transferred (${mb(median(cold.map((r) => r.decoded)))} decoded, ${cold[0].requests} requests)`);
    console.log(`  warm  ${secs(warmT).padStart(8)}  = ${(warmT / bareT).toFixed(2)}× bare   ${mb(median(warm.map((r) => r.bytes)))} transferred`);
    console.log(`  worker steps, cold (from worker start): ${steps(cold)}`);
    console.log(`  worker steps, warm (from worker start): ${steps(warm)}`);
  }
  if (csp) console.log(`\nworker CSP: a fetch to ${otherOrigin} from the agent worker was ${csp}`);
  const okRatio = agent.micropip ? median(agent.micropip.cold.map((r) => r.readyAt)) / bareT <= TARGET_RATIO : true;
  console.log(`\ntargets: cold/bare ≤ ${TARGET_RATIO}× ${okRatio ? "met" : "NOT met"}; cold transfer ≤ ${TARGET_MB} MB ${coldBytes <= TARGET_MB * 1e6 ? "met" : "NOT met"}`);
} catch (error) {
  console.error(`browser benchmark failed: ${error.message}`);
  exitCode = 1;
} finally {
  if (browser) await browser.close();
  proc.kill();
}
process.exit(exitCode);

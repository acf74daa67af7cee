// The chat page: wires the worker client, the read replica, the transcript and the
// settings together, and publishes window.pyAgent for host pages and tests.

import { AgentClient } from "./agent.js";
import { Replica, TableBrowser } from "./replica.js";
import { PROVIDERS, settings } from "./store.js";
import { Transcript } from "./transcript.js";

const $ = (selector) => document.querySelector(selector);
const params = new URLSearchParams(location.search);
const schema = $('meta[name="py-agent-schema"]').content;

const replica = new Replica();
const agent = new AgentClient({ schema, replica, testHooks: params.has("test") });
const tables = new TableBrowser($("[data-tables-panel]"), replica);
const transcript = new Transcript($("[data-log]"), { onDecide: (approved) => agent.decide(approved) });

const ui = {
  status: $("[data-status]"),
  boot: $("[data-boot]"),
  bootFill: $("[data-boot-fill]"),
  bootBar: $("[data-boot] [role=progressbar]"),
  bootText: $("[data-boot-text]"),
  input: $("[data-input]"),
  send: $("[data-send]"),
  stop: $("[data-stop]"),
  dialog: $("[data-settings]"),
  form: $("[data-settings-form]"),
  modelNote: $("[data-model-note]"),
};

// --- status and boot progress -------------------------------------------------------------

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.hidden = !busy;
  if (busy) setStatus("working", "Working…");
  else if (agentReady) setStatus("ready", "Ready");
}

function showBoot(event) {
  const value = event.total ? Math.round((100 * Math.min(event.loaded, event.total)) / event.total) : 0;
  ui.bootFill.style.width = `${Math.max(value, 3)}%`;
  ui.bootBar.setAttribute("aria-valuenow", String(value));
  const mb = (n) => (n / 1e6).toFixed(1);
  ui.bootText.textContent = event.total ? `${event.message}… ${mb(event.loaded)} of ${mb(event.total)} MB` : `${event.message}…`;
  ui.boot.hidden = false;
}

let agentReady = false;

agent.on("boot", showBoot);
agent.on("restarted", () => {
  // The transcript already says why (an error note from the client).
  agentReady = false;
  setStatus("booting", "Restarting…");
});
agent.on("ready", (event) => {
  agentReady = true;
  ui.bootFill.style.width = "100%";
  ui.bootText.textContent = event.restored ? "Ready · restored your saved database" : "Ready";
  ui.boot.classList.add("done");
  setTimeout(() => (ui.boot.hidden = true), 600);
  setBusy(agent.running);
  transcript.disableStaleApprovals();
});
agent.on("fatal", (event) => {
  setStatus("error", "Stopped");
  ui.boot.hidden = false;
  ui.boot.classList.add("failed");
  ui.bootText.textContent = `${event.message} — ${event.hint}`;
});

// --- the conversation ---------------------------------------------------------------------

for (const type of [
  "user_message", "signal", "message_delta", "code_delta", "assistant_reply", "malformed_reply",
  "validation_failed", "execution_result", "changes", "approval_required", "approval_decision",
  "error", "notice", "turn_end",
]) {
  agent.on(type, (event) => transcript.render(event));
}
agent.on("running", (event) => setBusy(event.running));
agent.on("saved", (event) => event.db && tables.render());
agent.on("reset", () => {
  transcript.clear();
  tables.render();
});

async function send(text) {
  text = text.trim();
  if (!text || agent.running) return;
  ui.input.value = "";
  try {
    await agent.send(text);
  } catch (error) {
    transcript.render({ type: "error", kind: "page", message: error.message, hint: "" });
  }
}

$("[data-composer]").addEventListener("submit", (event) => {
  event.preventDefault();
  send(ui.input.value);
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send(ui.input.value);
  }
});
ui.stop.addEventListener("click", () => agent.stop());
document.querySelectorAll("[data-suggestion]").forEach((chip) => chip.addEventListener("click", () => send(chip.textContent)));

// --- tables panel: download and import ----------------------------------------------------

$("[data-action=toggle-tables]").addEventListener("click", (event) => {
  const hidden = document.body.classList.toggle("tables-hidden");
  event.currentTarget.setAttribute("aria-expanded", String(!hidden));
});

$("[data-action=download]").addEventListener("click", async () => {
  const bytes = agentReady ? await agent.exportDb() : replica.bytes;
  if (!bytes) return;
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/vnd.sqlite3" }));
  const link = Object.assign(document.createElement("a"), { href: url, download: `${schema.split(".").pop()}.sqlite` });
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
});

$("[data-import]").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  // A refused file is reported by the client as an error event; nothing else to do here.
  await agent.importDb(new Uint8Array(await file.arrayBuffer())).catch(() => {});
});

// --- settings -------------------------------------------------------------------------------

const providerSelect = $("[data-provider]");
for (const [id, { label }] of Object.entries(PROVIDERS)) providerSelect.append(new Option(label, id));

function fillSettings() {
  const values = settings.load();
  const form = ui.form.elements;
  for (const name of ["provider", "model", "baseUrl", "approve"]) form[name].value = values[name];
  form.rememberKey.checked = values.rememberKey;
  form.key.value = settings.key();
  updatePlaceholders();
}

function updatePlaceholders() {
  const form = ui.form.elements;
  const provider = PROVIDERS[form.provider.value];
  const isDemo = form.provider.value === "demo";
  form.model.placeholder = provider.model || "model name";
  form.baseUrl.placeholder = provider.base || "";
  for (const name of ["model", "baseUrl", "key", "rememberKey"]) form[name].disabled = isDemo;
}
providerSelect.addEventListener("change", updatePlaceholders);

$("[data-action=settings]").addEventListener("click", () => {
  fillSettings();
  ui.dialog.showModal();
});

ui.dialog.addEventListener("close", async () => {
  if (ui.dialog.returnValue !== "save") return;
  const form = ui.form.elements;
  const values = {
    provider: form.provider.value,
    model: form.model.value.trim(),
    baseUrl: form.baseUrl.value.trim(),
    approve: form.approve.value,
    rememberKey: form.rememberKey.checked,
    key: form.key.value.trim(),
  };
  try {
    await agent.configure(values);
    transcript.render({ type: "notice", message: `Now using ${modelLabel()}.` });
  } catch {
    // The worker's error event is already in the transcript, with its hint.
  }
  showModelNote();
});

$("[data-action=reset]").addEventListener("click", async () => {
  if (!confirm("Reset the database to the demo data and forget the conversation?")) return;
  ui.dialog.close();
  await agent.reset();
});

function modelLabel() {
  const values = settings.load();
  if (values.provider === "demo") return "the demo model";
  return `${values.provider}:${values.model || PROVIDERS[values.provider].model}`;
}

function showModelNote() {
  ui.modelNote.textContent =
    settings.load().provider === "demo"
      ? "You are talking to the demo model, which replays recorded replies (their code runs for real). Open Settings to use your own model and key."
      : `Model: ${modelLabel()}.`;
}

// --- start ---------------------------------------------------------------------------------

async function start() {
  showModelNote();
  const saved = await agent.start();
  for (const event of saved?.log ?? []) transcript.render(event, false);
  if (replica.db) tables.render();
  transcript.root.scrollTop = transcript.root.scrollHeight;
  await agent.ready;
  tables.render();
  registerServiceWorker();
}

// The service worker keeps a copy of the site so a second visit works offline. Its URL
// carries the build's version, so a new build installs a new worker and a fresh cache.
async function registerServiceWorker() {
  if (!("serviceWorker" in navigator) || params.has("nosw")) return;
  try {
    const build = await (await fetch("build.json", { cache: "no-store" })).json();
    await navigator.serviceWorker.register(`sw.js?v=${encodeURIComponent(build.version)}`);
  } catch {
    // Offline, or no build.json: keep whatever worker is registered.
  }
}

window.pyAgent = {
  get ready() {
    return agent.ready.then(() => undefined);
  },
  send: (text) => agent.send(text),
  abort: () => agent.abort(),
  interrupt: () => agent.interrupt(),
  stop: () => agent.stop(),
  reset: () => agent.reset(),
  exportDb: () => agent.exportDb(),
  importDb: (bytes) => agent.importDb(bytes),
  configure: (values) => agent.configure(values),
  db: { query: (sql, params) => replica.query(sql, params) },
  on: (type, fn) => agent.on(type, fn),
  get running() {
    return agent.running;
  },
  get restarts() {
    return agent.restarts;
  },
  debug: (code) => agent.debug(code),
  scan: (needle) => agent.scan(needle),
};

if (agent.testHooks) window.__agent = agent; // tests may talk to the worker directly

start().catch((error) => {
  setStatus("error", "Stopped");
  ui.bootText.textContent = `The page could not start: ${error.message}`;
  ui.boot.classList.add("failed");
});

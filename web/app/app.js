// The chat page: wires the worker client, the read replica, the transcript, the table
// browser, the banners and the dialogs together, and publishes window.pyAgent for host
// pages and tests.

import { AgentClient } from "./agent.js";
import { archive } from "./archive.js";
import { Banners } from "./banners.js";
import { demoFile, demoFromEvents } from "./demo.js";
import { registerServiceWorker as registerSw, secureWorker } from "./guard.js";
import { download, el } from "./grid.js";
import { Replica } from "./replica.js";
import { PROVIDERS, settings } from "./store.js";
import { TableBrowser } from "./tables.js";
import { revertedPoints, Transcript } from "./transcript.js";

const $ = (selector) => document.querySelector(selector);
const params = new URLSearchParams(location.search);
const schema = $('meta[name="py-agent-schema"]').content;
const narrow = matchMedia("(max-width: 900px)"); // the table browser becomes a drawer
const phone = matchMedia("(max-width: 640px)"); // the header's actions fold into a menu

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
  model: $("[data-model]"),
  announce: $("[data-announce]"),
  menu: $("[data-menu]"),
  tablesToggle: $("[data-action=toggle-tables]"),
  scrim: $("[data-scrim]"),
};

const replica = new Replica();
const agent = new AgentClient({ schema, replica, testHooks: params.has("test") });
const tables = new TableBrowser($("[data-tables-panel]"), replica);
const banners = new Banners($("[data-banners]"));
const transcript = new Transcript($("[data-log]"), {
  onDecide: (approved, options) => decide(approved, options),
  onUndo: (point) => undo(point),
  announce,
  showTokens: () => settings.load().provider !== "demo", // the demo model makes no model calls
  format: (table, column, value) => tables.plain(table, column, value),
});

let agentReady = false;
let fatal = false;
let waiting = null; // the step waiting for the person's decision, or null

// --- status, boot progress, announcements ------------------------------------------------------

function updateStatus() {
  const [state, text] = fatal
    ? ["error", "Stopped"]
    : !agentReady
      ? ["booting", agent.restarts ? "Restarting…" : "Starting…"]
      : waiting !== null && !agent.running
        ? ["waiting", "Waiting for your decision"]
        : agent.running
          ? ["working", "Working…"]
          : ["ready", "Ready"];
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  ui.stop.hidden = !agent.running;
}

function showBoot(event) {
  const value = event.total ? Math.round((100 * Math.min(event.loaded, event.total)) / event.total) : 0;
  ui.bootFill.style.width = `${Math.max(value, 3)}%`;
  ui.bootBar.setAttribute("aria-valuenow", String(value));
  const mb = (n) => (n / 1e6).toFixed(1);
  ui.bootText.textContent = event.total ? `${event.message}… ${mb(event.loaded)} of ${mb(event.total)} MB` : `${event.message}…`;
  ui.boot.hidden = false;
  ui.boot.classList.remove("done");
}

/** Say `text` to screen readers: the only live region is for finished messages. */
function announce(text) {
  ui.announce.textContent = "";
  requestAnimationFrame(() => (ui.announce.textContent = text));
}

agent.on("boot", showBoot);
agent.on("restarted", () => {
  agentReady = false;
  updateStatus();
});
agent.on("ready", (event) => {
  agentReady = true;
  ui.bootFill.style.width = "100%";
  ui.bootText.textContent = event.restored ? "Ready · restored your saved database" : "Ready";
  ui.boot.classList.add("done");
  setTimeout(() => (ui.boot.hidden = true), 600);
  tables.setSchema(event);
  tables.render();
  // A step waiting for approval survives a reload only if the worker says so.
  const pending = agent.pending?.step ?? null;
  waiting = pending;
  transcript.disableStaleApprovals(pending);
  if (Array.isArray(event.history)) historyView.set(event.history);
  if (banners.has("worker_lost")) banners.show("worker_lost", "ok", "Python was restored from the last saved state. You can go on.", [dismiss("worker_lost")]);
  updateStatus();
});
agent.on("fatal", (event) => {
  fatal = true;
  updateStatus();
  ui.boot.hidden = false;
  ui.boot.classList.add("failed");
  ui.bootText.textContent = `${event.message} — ${event.hint}`;
  banners.show("fatal", "error", `${event.message}. ${capitalise(event.hint)}`, [{ label: "Reload", run: () => location.reload() }]);
});

// --- the conversation ------------------------------------------------------------------------

for (const type of [
  "user_message", "signal", "message_delta", "code_delta", "assistant_reply", "malformed_reply", "reply_truncated",
  "validation_failed", "output_delta", "execution_result", "display", "changes", "approval_required",
  "approval_decision", "history_point", "undone", "error", "notice", "turn_end", "step_started",
  "step_ended", "queued", "tool_call", "worker_lost", "pending_discarded",
]) {
  agent.on(type, (event) => transcript.render(event));
}

agent.on("running", () => updateStatus());
agent.on("user_message", () => tables.startRequest());
agent.on("changes", (event) => {
  if (event.status === "committed") tables.addChanges(event);
  if (event.status !== "pending" && waiting === event.step) setWaiting(null);
});
agent.on("approval_required", (event) => setWaiting(event.step, event));
agent.on("approval_decision", () => setWaiting(null));
agent.on("saved", (event) => {
  if (!event.db) return;
  transcript.markSaved(event.step);
  tables.render();
});
agent.on("undone", (event) => {
  for (const id of revertedPoints(event)) historyView.markUndone(id);
  tables.startRequest();
  tables.render();
});
agent.on("reset", () => {
  transcript.clear();
  setWaiting(null);
  tables.startRequest();
  tables.render();
});
agent.on("conversation", (event) => {
  // A new or continued conversation, or this tab took over from another: draw it again.
  transcript.clear();
  for (const item of event.log ?? []) transcript.render(item, false);
  setWaiting(agent.pending?.step ?? null, agent.pending);
  transcript.disableStaleApprovals(waiting);
  tables.startRequest();
  historyView.set([]);
  agent.history?.().then((points) => historyView.set(points), () => {});
});
agent.on("queue_sent", (event) => transcript.markSending(event.text));
agent.on("history_point", (event) => historyView.add(event.point));
agent.on("history", (event) => historyView.set(event.points));

function setWaiting(step, event = null) {
  waiting = step;
  tables.setPending(step === null ? null : event);
  updateStatus();
}

// --- sending (the client queues what is typed while it cannot take it) ---------------------------

async function submit(text) {
  text = text.trim();
  if (!text) return;
  ui.input.value = "";
  try {
    if (!opened) keepForReload(text); // a first visit on a plain host may reload the page once (guard.js)
    await launchOnce();
    await opened; // the client knows whether this tab may write once the saved record is read
    forgetForReload(text);
    const result = await agent.send(text);
    if (result?.type === "unqueued" || result?.type === "error") transcript.unqueue(text);
  } catch (error) {
    transcript.unqueue(text);
    transcript.render({ type: "error", kind: "page", message: error.message, hint: "" });
  }
}

async function decide(approved, { remember = false } = {}) {
  setWaiting(null);
  try {
    await agent.decide(approved, { remember });
  } catch (error) {
    transcript.render({ type: "error", kind: "page", message: error.message, hint: "" });
  }
}

async function undo(point) {
  if (typeof agent.undo !== "function") return notAvailable("Undo");
  try {
    await agent.undo(point);
  } catch (error) {
    transcript.render({ type: "error", kind: "undo", message: `The undo did not happen: ${error.message}`, hint: "the data is as it was before you pressed Undo" });
  }
}

function notAvailable(what) {
  transcript.render({ type: "notice", message: `${what} is not available in this version of the page.` });
}

$("[data-composer]").addEventListener("submit", (event) => {
  event.preventDefault();
  submit(ui.input.value);
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit(ui.input.value);
  }
});
ui.stop.addEventListener("click", () => agent.stop());
for (const chip of document.querySelectorAll("[data-suggestion]")) {
  chip.addEventListener("click", () => {
    submit(chip.textContent);
    ui.input.focus(); // the next thing typed goes to the composer, not into the void
  });
}

// --- banners: other tabs, damaged storage, a lost worker ---------------------------------------

function dismiss(id) {
  return { label: "Dismiss", run: () => banners.hide(id) };
}

agent.on("tab_conflict", (event) => {
  if (event.state === "resolved") return banners.hide("tab");
  const message =
    event.state === "taken-over"
      ? "Another tab took over this app's database. This tab has stopped saving, so nothing is overwritten."
      : "This app is open in another tab, which holds the database. This tab will not save changes until you use it here.";
  banners.show("tab", "warn", message, [{ label: "Use here", run: () => agent.takeOver?.() }]);
});
agent.on("storage_damaged", (event) => {
  const actions = [dismiss(`damaged-${event.what}`)];
  if (typeof agent.downloadDamaged === "function") {
    actions.unshift({
      label: "Download the damaged copy",
      run: async () => {
        const bytes = await agent.downloadDamaged(event.what);
        download(new Blob([bytes]), `damaged-${event.what}${event.what === "db" || event.what === "database" ? ".sqlite" : ".json"}`);
      },
    });
  }
  banners.show(`damaged-${event.what}`, "error", event.message, actions);
});
agent.on("worker_lost", (event) => {
  const why = { memory: "ran out of memory", crash: "crashed", timeout: "stopped responding" }[event.reason] ?? "stopped";
  banners.show("worker_lost", "warn", event.message || `Python ${why}. Restoring it from the last saved state…`, [dismiss("worker_lost")]);
});
agent.on("pending_discarded", () => setWaiting(null)); // the transcript renders the note

// --- the tables panel: a column on wide screens, a drawer on small ones -------------------------

function tablesShown() {
  return narrow.matches ? document.body.classList.contains("drawer-open") : !document.body.classList.contains("tables-hidden");
}

function showTables(show) {
  if (narrow.matches) {
    document.body.classList.toggle("drawer-open", show);
    ui.scrim.hidden = !show;
    if (show) $("[data-tables-panel] .table-tab[aria-pressed=true], [data-tables-panel] button")?.focus();
    else ui.tablesToggle.focus();
  } else {
    document.body.classList.toggle("tables-hidden", !show);
  }
  ui.tablesToggle.setAttribute("aria-expanded", String(tablesShown()));
}

ui.tablesToggle.addEventListener("click", () => showTables(!tablesShown()));
$("[data-action=close-tables]").addEventListener("click", () => showTables(false));
ui.scrim.addEventListener("click", () => showTables(false));
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (narrow.matches && tablesShown()) showTables(false);
  if (phone.matches && ui.menu.open) {
    ui.menu.open = false;
    ui.menu.querySelector("summary").focus();
  }
});

function fitLayout() {
  document.body.classList.remove("drawer-open");
  ui.scrim.hidden = true;
  ui.tablesToggle.setAttribute("aria-expanded", String(tablesShown()));
  ui.menu.open = !phone.matches; // wide screens show the menu's buttons in the header
}
narrow.addEventListener("change", fitLayout);
phone.addEventListener("change", fitLayout);
fitLayout();
ui.menu.addEventListener("click", (event) => {
  if (phone.matches && event.target.closest(".menu-items button")) ui.menu.open = false;
});

$("[data-action=download]").addEventListener("click", async () => {
  const bytes = agentReady ? await agent.exportDb() : replica.bytes;
  if (bytes) download(new Blob([bytes], { type: "application/vnd.sqlite3" }), `${schema.split(".").pop()}.sqlite`);
});

const importInput = $("[data-import]");
$("[data-action=import]").addEventListener("click", () => importInput.click());
importInput.addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  if (narrow.matches) showTables(false); // the import's preview and question are in the conversation
  // A refused file is reported by the client as an error event; nothing else to do here.
  await agent.importDb(new Uint8Array(await file.arrayBuffer())).catch(() => {});
});

// --- conversations: new, past, read again, continue -------------------------------------------

const conversations = {
  dialog: $("[data-conversations]"),
  list: $("[data-conversation-list]"),
  index: $("[data-conversation-index]"),
  reader: $("[data-reader]"),
  readerTitle: $("[data-reader-title]"),
  readerLog: $("[data-reader-log]"),
};

function canLeaveConversation() {
  if (!agent.running && waiting === null) return true;
  transcript.render({ type: "notice", message: "Finish the current request first (or press Stop), then start or open another conversation." });
  return false;
}

/** Switch the worker to another conversation on the same data (an empty one by default). */
async function switchConversation(record = {}) {
  agent.clearQueue?.();
  await agent.newConversation(record); // its `conversation` event redraws the transcript
}

async function newConversation() {
  if (!canLeaveConversation()) return;
  const previous = { log: agent.log, conversation: agent.conversation };
  try {
    await switchConversation();
  } catch (error) {
    return transcript.render({ type: "error", kind: "page", message: `No new conversation was started: ${error.message}`, hint: "" });
  }
  await archive.add(schema, previous).catch(() => null);
  transcript.render({ type: "notice", message: "New conversation. The data is as you left it; earlier conversations are under Conversations." });
  ui.input.focus();
}

async function openConversations() {
  conversations.reader.hidden = true;
  conversations.index.hidden = false;
  const items = await archive.list(schema).catch(() => []);
  conversations.list.replaceChildren(
    ...(items.length
      ? items.map((item) => {
          const read = el("button", { type: "button", class: "ghost small" }, "Read");
          const resume = el("button", { type: "button", class: "ghost small" }, "Continue");
          read.setAttribute("aria-label", `Read “${item.title}”`);
          resume.setAttribute("aria-label", `Continue “${item.title}”`);
          read.addEventListener("click", () => readConversation(item.id));
          resume.addEventListener("click", () => continueConversation(item.id));
          const when = new Date(item.at);
          return el(
            "li",
            { "data-conversation": item.id },
            el("div", { class: "item-main" }, el("strong", {}, item.title), el("span", { class: "muted small" }, `${when.toLocaleString()} · ${item.requests} request${item.requests === 1 ? "" : "s"}`)),
            el("div", { class: "item-actions" }, read, resume),
          );
        })
      : [el("li", { class: "muted" }, "No earlier conversations yet. “New conversation” keeps the current one here.")]),
  );
  if (!conversations.dialog.open) conversations.dialog.showModal();
}

async function readConversation(id) {
  const record = await archive.get(id);
  if (!record) return;
  conversations.readerTitle.textContent = record.title;
  const reader = new Transcript(conversations.readerLog, { showTokens: () => false });
  for (const event of record.log) reader.render(event, false);
  conversations.index.hidden = true;
  conversations.reader.hidden = false;
  conversations.readerLog.focus();
}

async function continueConversation(id) {
  if (!canLeaveConversation()) return conversations.dialog.close();
  const record = await archive.get(id);
  if (!record) return;
  conversations.dialog.close();
  const previous = { log: agent.log, conversation: agent.conversation };
  try {
    await switchConversation({ conversation: record.conversation, log: record.log });
  } catch (error) {
    return transcript.render({ type: "error", kind: "page", message: `That conversation could not be continued: ${error.message}`, hint: "it is still in the list" });
  }
  await archive.add(schema, previous).catch(() => null);
  await archive.remove(id);
  transcript.render({ type: "notice", message: "You are continuing this conversation, on today's data." });
  ui.input.focus();
}

$("[data-action=new-conversation]").addEventListener("click", newConversation);
$("[data-action=conversations]").addEventListener("click", openConversations);
$("[data-reader-back]").addEventListener("click", () => {
  conversations.readerLog.replaceChildren();
  conversations.reader.hidden = true;
  conversations.index.hidden = false;
  conversations.list.querySelector("button")?.focus();
});
for (const close of document.querySelectorAll("dialog [data-close]")) close.addEventListener("click", () => close.closest("dialog").close());
conversations.dialog.addEventListener("close", () => conversations.readerLog.replaceChildren());

// --- history: undo and restore -----------------------------------------------------------------

const historyView = {
  points: [],
  dialog: $("[data-history]"),
  list: $("[data-history-list]"),
  set(points) {
    this.points = Array.isArray(points) ? [...points] : [];
    if (this.dialog.open) this.render();
  },
  add(point) {
    if (!point) return;
    this.points = [...this.points.filter((p) => p.id !== point.id), point];
    if (this.dialog.open) this.render();
  },
  markUndone(id) {
    this.points = this.points.map((p) => (p.id === id ? { ...p, undone: true } : p));
    if (this.dialog.open) this.render();
  },
  render() {
    const points = [...this.points].reverse();
    this.list.replaceChildren(
      ...(points.length
        ? points.map((point, i) => {
            const when = point.at ? new Date(point.at).toLocaleString() : "";
            const counts = Object.entries(point.tables || {})
              .map(([t, c]) => `${t} ${[c.inserted && `+${c.inserted}`, c.updated && `~${c.updated}`, c.deleted && `−${c.deleted}`].filter(Boolean).join(" ")}`)
              .join(", ");
            const actions = el("div", { class: "item-actions" });
            if (i === 0 && point.undoable && !point.undone) {
              const button = el("button", { type: "button", class: "ghost small" }, "Undo");
              button.addEventListener("click", () => (this.dialog.close(), undo(point.id)));
              actions.append(button);
            } else if (i > 0) {
              const button = el("button", { type: "button", class: "ghost small" }, "Restore to here");
              button.setAttribute("aria-label", `Restore the data to how it was after “${point.request || point.kind}”`);
              button.addEventListener("click", () => this.restore(point));
              actions.append(button);
            }
            return el(
              "li",
              { "data-point": String(point.id), class: point.undone ? "undone" : null },
              el("div", { class: "item-main" }, el("strong", {}, point.request || KINDS[point.kind] || point.kind), el("span", { class: "muted small" }, [KINDS[point.kind], when, counts, point.undone ? "undone" : ""].filter(Boolean).join(" · "))),
              actions,
            );
          })
        : [el("li", { class: "muted" }, "Nothing saved in this conversation yet.")]),
    );
  },
  async restore(point) {
    if (typeof agent.restore !== "function") return (this.dialog.close(), notAvailable("Restoring a point of the history"));
    if (!confirm(`Restore the data to how it was after “${point.request || point.kind}”? This is recorded too, so it can be undone.`)) return;
    this.dialog.close();
    try {
      await agent.restore(point.id);
    } catch (error) {
      transcript.render({ type: "error", kind: "restore", message: `The data was not restored: ${error.message}`, hint: "the data is as it was" });
    }
  },
};
const KINDS = { turn: "request", undo: "undo", import: "import", restore: "restore" };

$("[data-action=history]").addEventListener("click", () => {
  historyView.render();
  historyView.dialog.showModal();
});

// --- settings and the active model ---------------------------------------------------------------

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

function openSettings() {
  fillSettings();
  ui.dialog.showModal();
}
$("[data-action=settings]").addEventListener("click", openSettings);
$("[data-action=change-model]").addEventListener("click", openSettings);

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
  showModel();
});

$("[data-action=reset]").addEventListener("click", async () => {
  if (!confirm("Reset the database to the demo data and forget the conversation?")) return;
  ui.dialog.close();
  agent.clearQueue?.();
  await agent.reset();
});

function modelLabel() {
  const values = settings.load();
  if (values.provider === "demo") return "the demo model";
  return `${values.provider}:${values.model || PROVIDERS[values.provider].model}`;
}

function showModel() {
  const demo = settings.load().provider === "demo";
  ui.model.textContent = demo ? "Model: demo (recorded replies, no key)" : `Model: ${modelLabel()}`;
  ui.modelNote.textContent = demo
    ? "You are talking to the demo model, which replays recorded replies (their code runs for real). Open Settings to use your own model and key."
    : `Model: ${modelLabel()}.`;
}

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".") : "";
}

// --- save as demo -------------------------------------------------------------------------------

// The conversation so far as a recorded demo (py_agent.recording's format): shipped with
// `py-agent build APP --demo FILE`, it is what the site replays when no model is set.
$("[data-action=save-demo]").addEventListener("click", () => {
  const model = settings.load().provider === "demo" ? "demo" : modelLabel();
  const demo = demoFromEvents(agent.log, { app: schema, model });
  if (!demo.turns.length) {
    return transcript.render({ type: "notice", message: "There is nothing to save yet: a demo needs at least one request the model answered." });
  }
  const name = `${schema.split(".").pop()}-demo.json`;
  download(new Blob([demoFile(demo)], { type: "application/json" }), name);
  const n = demo.turns.length;
  transcript.render({ type: "notice", message: `Saved ${n} request${n === 1 ? "" : "s"} as ${name}. Build a site that replays it with: py-agent build APP --out DIR --demo ${name}` });
});

// --- start ---------------------------------------------------------------------------------------

let opened = null; // settles once the saved record has been read (see launchApp)
let launch = null; // launchApp(), once it began
const LAUNCH_NOW = "py-agent:launch-now"; // the page reloaded in the middle of launching (guard.js)
const KEPT = "py-agent:kept-messages"; // messages typed then, sent after the reload

function launchOnce() {
  return (launch ??= launchApp());
}

/** Start the agent: only once the worker's network wall holds (guard.js), then boot. */
async function launchApp() {
  sessionStorage.setItem(LAUNCH_NOW, "1");
  ui.status.textContent = "Starting…";
  try {
    await secureWorker({
      allowServiceWorker: !params.has("nosw"),
      report: (message) => showBoot({ message, loaded: 0, total: 0 }),
    });
  } catch (error) {
    sessionStorage.removeItem(LAUNCH_NOW);
    agent.fatal(error.message, error.hint);
    throw error;
  }
  sessionStorage.removeItem(LAUNCH_NOW);
  opened = agent.start();
  afterLaunch().catch(() => {});
}

async function afterLaunch() {
  const saved = await opened;
  for (const event of saved?.log ?? []) transcript.render(event, false);
  transcript.keepQueueLast(); // messages queued before the reload stay below the conversation
  if (replica.db) tables.render();
  transcript.root.scrollTop = transcript.root.scrollHeight;
  for (const text of readKept()) submit(text);
  await agent.ready;
  registerServiceWorker();
}

function readKept() {
  try {
    return JSON.parse(sessionStorage.getItem(KEPT) || "[]").filter((text) => typeof text === "string");
  } catch {
    return [];
  } finally {
    sessionStorage.removeItem(KEPT);
  }
}

function keepForReload(text) {
  sessionStorage.setItem(KEPT, JSON.stringify([...readKept(), text]));
}

function forgetForReload(text) {
  const kept = readKept();
  const at = kept.indexOf(text);
  if (at >= 0) kept.splice(at, 1);
  if (kept.length) sessionStorage.setItem(KEPT, JSON.stringify(kept));
}

async function start() {
  showModel();
  updateStatus();
  if (params.has("lazy") && !sessionStorage.getItem(LAUNCH_NOW) && !sessionStorage.getItem(KEPT)) {
    // Embedded without `eager`: Python boots on the first interaction with the chat.
    ui.bootText.textContent = "Python starts when you use the chat.";
    ui.status.textContent = "Not started";
    const go = () => {
      for (const type of ["pointerdown", "keydown", "focusin"]) document.removeEventListener(type, go, true);
      launchOnce().catch(() => {});
    };
    for (const type of ["pointerdown", "keydown", "focusin"]) document.addEventListener(type, go, true);
    return;
  }
  await launchOnce();
}

// The service worker keeps a copy of the site so a second visit works offline. Its URL
// carries the build's version, so a new build installs a new worker and a fresh cache.
async function registerServiceWorker() {
  if (!("serviceWorker" in navigator) || params.has("nosw")) return;
  try {
    await registerSw();
  } catch {
    // Offline, or no build.json: keep whatever worker is registered.
  }
}

// The methods AgentClient has (some arrive with the runtime's wave-2 work) pass straight through.
const passThrough = (name) => (...args) => {
  if (typeof agent[name] !== "function") throw new Error(`${name}() is not available in this version`);
  return agent[name](...args);
};

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
  decide: (approved, options) => agent.decide(approved, options),
  undo: passThrough("undo"),
  restore: passThrough("restore"),
  takeOver: passThrough("takeOver"),
  downloadDamaged: passThrough("downloadDamaged"),
  newConversation: () => newConversation(),
  start: () => launchOnce(), // a lazy (embedded) page boots on the first interaction, or now
  saveDemo: () => demoFromEvents(agent.log, { app: schema }),
  clearQueue: passThrough("clearQueue"),
  history: passThrough("history"),
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

// Inside a frame of another page (embed.js: <py-agent-chat>, createAgent): answer it.
if (params.has("embed")) {
  document.body.classList.add("embedded");
  if (params.has("headless")) document.body.classList.add("headless");
  Promise.all([import("./bridge.js"), fetch("app.json").then((r) => (r.ok ? r.json() : {})).catch(() => ({}))]).then(([bridge, app]) =>
    bridge.startBridge({ api: window.pyAgent, app, start: () => launchOnce().then(() => agent.ready).then(() => true) }),
  );
}

start().catch((error) => {
  fatal = true;
  updateStatus();
  ui.bootText.textContent = `The page could not start: ${error.message}`;
  ui.boot.classList.add("failed");
});

// Persistence in the page: the database file, the conversation and the rendered
// transcript in IndexedDB (one record per app), settings in localStorage.
// The API key is kept in memory unless the person asks to remember it.
//
// A save counts only once IndexedDB says it is durable: every write is a
// readwrite transaction with durability "strict", and its promise settles on the
// transaction's `complete` (or fails with the browser's reason). Copies of saved
// state that could not be read are kept beside the record (`<app>#damaged`).

import { isPlainObject } from "./checks.js";

const DB_NAME = "py-agent";
const STORE = "saves";
const SETTINGS_KEY = "py-agent:settings";
const API_KEY = "py-agent:key";

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(new Error("the browser's storage is blocked by another tab of an older version"));
  });
}

function transact(mode, work) {
  return openDb().then(
    (db) =>
      new Promise((resolve, reject) => {
        const tx = mode === "readwrite" ? db.transaction(STORE, mode, { durability: "strict" }) : db.transaction(STORE, mode);
        const result = work(tx.objectStore(STORE));
        tx.oncomplete = () => {
          db.close();
          resolve(result.result);
        };
        tx.onerror = tx.onabort = () => {
          db.close();
          reject(tx.error || new Error("the browser aborted the write"));
        };
      }),
  );
}

// Saves are chained so they land in the order they were made; a failed one does not
// stop the ones after it, but its own promise rejects (the caller says so).
let queue = Promise.resolve();
let pending = 0;

function enqueue(task) {
  pending += 1;
  const run = queue.then(task);
  queue = run.catch(() => {}).finally(() => (pending -= 1));
  return run;
}

export const saves = {
  /** The saved record as stored (not checked: see checks.readSaved). Rejects if storage fails. */
  load(name) {
    return transact("readonly", (store) => store.get(name));
  },
  /**
   * Merge `patch` ({db?, conversation?, log?, queue?}) into the saved record. Resolves once
   * the write is durable; rejects with the reason otherwise. `allowed()` is asked when the
   * write's turn comes (a tab that lost the database must not write late saves).
   */
  save(name, patch, { allowed = () => true } = {}) {
    return enqueue(async () => {
      if (!allowed()) throw new Error("this tab no longer holds the database");
      const current = await this.load(name);
      const record = { ...(isPlainObject(current) ? current : {}), ...patch, savedAt: Date.now() };
      await transact("readwrite", (store) => store.put(record, name));
    });
  },
  /** Keep a copy of saved state that could not be read: `{what: {at, copy}}` beside the record. */
  keepDamaged(name, what, copy) {
    return enqueue(async () => {
      const key = `${name}#damaged`;
      const kept = await this.load(key);
      const record = { ...(isPlainObject(kept) ? kept : {}), [what]: { at: Date.now(), copy } };
      await transact("readwrite", (store) => store.put(record, key));
    });
  },
  loadDamaged(name) {
    return this.load(`${name}#damaged`).then((kept) => (isPlainObject(kept) ? kept : {}));
  },
  clear(name) {
    return enqueue(() => transact("readwrite", (store) => store.delete(name)));
  },
  /** Resolves when every save made so far has landed (or failed). */
  flush() {
    return queue;
  },
  /** Whether a save is still on its way to disk. */
  get busy() {
    return pending > 0;
  },
};

// --- settings ---------------------------------------------------------------------

export const PROVIDERS = {
  demo: { label: "Demo model (recorded replies, no key)", key: false },
  openai: { label: "OpenAI", base: "https://api.openai.com/v1", model: "gpt-4.1-mini", key: true },
  anthropic: { label: "Anthropic", base: "https://api.anthropic.com", model: "claude-sonnet-4-5", key: true },
  gemini: { label: "Google Gemini", base: "https://generativelanguage.googleapis.com", model: "gemini-2.5-flash", key: true },
  "openai-compatible": {
    label: "OpenAI-compatible (Ollama, vLLM, OpenRouter…)",
    base: "http://localhost:11434/v1",
    model: "",
    key: false,
  },
};

// timeout: seconds a step may run; memoryLimit: MB of memory a step may add (see worker.js).
const DEFAULTS = { provider: "demo", model: "", baseUrl: "", approve: "auto", rememberKey: false, timeout: 30, memoryLimit: 1024 };
const VALID = {
  provider: (v) => typeof v === "string" && Object.hasOwn(PROVIDERS, v),
  model: (v) => typeof v === "string",
  baseUrl: (v) => typeof v === "string",
  approve: (v) => v === "auto" || v === "ask",
  rememberKey: (v) => typeof v === "boolean",
  timeout: (v) => typeof v === "number" && v >= 1 && v <= 3600,
  memoryLimit: (v) => typeof v === "number" && v >= 256 && v <= 4000,
};

let memoryKey = "";

/** The saved settings: `{values, problem, raw}`; a value of the wrong type falls back to its default. */
function readSettings() {
  const raw = localStorage.getItem(SETTINGS_KEY);
  if (raw === null) return { values: { ...DEFAULTS }, problem: null, raw };
  let saved;
  try {
    saved = JSON.parse(raw);
  } catch {
    return { values: { ...DEFAULTS }, problem: "it is not JSON", raw };
  }
  if (!isPlainObject(saved)) return { values: { ...DEFAULTS }, problem: "it is not a set of settings", raw };
  const values = { ...DEFAULTS };
  const wrong = [];
  for (const [name, valid] of Object.entries(VALID)) {
    if (!(name in saved)) continue;
    if (valid(saved[name])) values[name] = saved[name];
    else wrong.push(name);
  }
  return { values, problem: wrong.length ? `wrong value for ${wrong.join(", ")}` : null, raw };
}

export const settings = {
  load() {
    return readSettings().values;
  },
  /** Why the saved settings could not be read as they are, with the raw text: {problem, raw}. */
  check() {
    const { problem, raw } = readSettings();
    return { problem, raw };
  },
  save(values) {
    const { key, ...rest } = values;
    const clean = { ...this.load() };
    for (const [name, valid] of Object.entries(VALID)) {
      if (!(name in rest)) continue;
      // Numbers typed into a form arrive as text.
      const value = typeof DEFAULTS[name] === "number" && typeof rest[name] === "string" && rest[name].trim() ? Number(rest[name]) : rest[name];
      if (valid(value)) clean[name] = value;
    }
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(clean));
    if (key !== undefined) this.setKey(key, clean.rememberKey);
  },
  /** The endpoint the fetch shim may contact: the base URL, or the provider's default. */
  endpoint(values = this.load()) {
    return (values.baseUrl || PROVIDERS[values.provider]?.base || "").trim();
  },
  key() {
    return memoryKey || localStorage.getItem(API_KEY) || "";
  },
  setKey(key, remember) {
    memoryKey = key || "";
    if (remember && key) localStorage.setItem(API_KEY, key);
    else localStorage.removeItem(API_KEY);
  },
};

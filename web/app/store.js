// Persistence in the page: the database file, the conversation and the rendered
// transcript in IndexedDB (one record per app), settings in localStorage.
// The API key is kept in memory unless the person asks to remember it.

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
  });
}

function transact(mode, work) {
  return openDb().then(
    (db) =>
      new Promise((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const result = work(tx.objectStore(STORE));
        tx.oncomplete = () => {
          db.close();
          resolve(result.result);
        };
        tx.onerror = tx.onabort = () => {
          db.close();
          reject(tx.error);
        };
      }),
  );
}

// Saves are chained so they land in the order they were made.
let queue = Promise.resolve();

export const saves = {
  load(name) {
    return transact("readonly", (store) => store.get(name)).catch(() => null);
  },
  /** Merge `patch` ({db?, conversation?, log?}) into the saved record. */
  save(name, patch) {
    queue = queue
      .then(async () => {
        const current = (await this.load(name)) || {};
        const record = { ...current, ...patch, savedAt: Date.now() };
        await transact("readwrite", (store) => store.put(record, name));
      })
      .catch((error) => console.error("py-agent: could not save", error));
    return queue;
  },
  clear(name) {
    queue = queue.then(() => transact("readwrite", (store) => store.delete(name))).catch(() => {});
    return queue;
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

const DEFAULTS = { provider: "demo", model: "", baseUrl: "", approve: "auto", rememberKey: false };

let memoryKey = "";

export const settings = {
  load() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}");
    } catch {
      saved = {};
    }
    const values = { ...DEFAULTS, ...saved };
    if (!PROVIDERS[values.provider]) values.provider = "demo";
    return values;
  },
  save(values) {
    const { key, ...rest } = values;
    localStorage.setItem(SETTINGS_KEY, JSON.stringify({ ...DEFAULTS, ...rest }));
    if (key !== undefined) this.setKey(key, rest.rememberKey);
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

// Past conversations, kept in this browser (IndexedDB database "py-agent-archive").
//
// "New conversation" files the current one here: {id, schema, title, at, log,
// conversation}. The log is the transcript's events (to read it again), the conversation
// is the worker's State.to_dict() (to continue it). The database is not archived: every
// conversation works on the same data.

const DB_NAME = "py-agent-archive";
const STORE = "conversations";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "id" }).createIndex("schema", "schema");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transact(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request?.result);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** The title of a conversation: its first request, cut short. */
export function titleOf(log) {
  const first = (log || []).find((event) => event.type === "user_message")?.content?.trim() || "Conversation";
  return first.length > 80 ? `${first.slice(0, 79)}…` : first;
}

export const archive = {
  /** Past conversations of `schema`, newest first, without their logs. */
  async list(schema) {
    const records = await transact("readonly", (store) => store.index("schema").getAll(schema));
    return records
      .sort((a, b) => b.at - a.at)
      .map(({ id, title, at, log }) => ({ id, title, at, requests: log.filter((e) => e.type === "user_message").length }));
  },
  get(id) {
    return transact("readonly", (store) => store.get(id));
  },
  /** File a conversation; returns its record. Empty conversations are not kept. */
  async add(schema, { log, conversation }) {
    if (!(log || []).some((event) => event.type === "user_message")) return null;
    const record = { id: crypto.randomUUID(), schema, title: titleOf(log), at: Date.now(), log, conversation: conversation ?? null };
    await transact("readwrite", (store) => store.put(record));
    return record;
  },
  remove(id) {
    return transact("readwrite", (store) => store.delete(id));
  },
};

// The page keeps the agent worker's boot snapshot (web/app/boot.js) in Cache Storage, so a
// later visit restores a booted Python instead of booting it again.
//
// The page, not the worker, holds it: the worker has no storage at all (wall.js), and a
// snapshot is code. The page offers the stored one to each new agent worker, and never
// keeps one from an agent worker (model code runs there). The worker checks what it is
// offered (this build, this schema, a checksum) and boots from the packages when it is
// stale or damaged; the page then has a fresh one made.
//
// The snapshot is made by a worker of its own, started in the background once the agent
// is ready (makeBootSnapshot): a first visit does not wait for the warm-up and the copy of
// Python's memory. That worker boots from the packages, warms up, hands the snapshot over
// and ends; it never opens a database or runs model code.
//
// AgentClient uses it in two places:
//   worker.postMessage({type: "init", ..., bootSnapshot: true}); offerBootSnapshot(worker);
//   after `ready` from a worker that booted from the packages ({snapshot: "wanted"}):
//   makeBootSnapshot(workerUrl, schema)

// Not "py-agent-…": the service worker deletes those caches when a new build activates.
export const BOOT_CACHE = "py-agent.boot";
const KEY = "boot-snapshot";

function entryUrl(scope) {
  return new URL(KEY, scope).href;
}

/** The stored snapshot's bytes, or null (none, or Cache Storage is unavailable). */
export async function loadBootSnapshot(scope = document.baseURI) {
  try {
    if (!globalThis.caches) return null;
    const cache = await caches.open(BOOT_CACHE);
    const response = await cache.match(entryUrl(scope));
    return response ? await response.arrayBuffer() : null;
  } catch (error) {
    console.warn("py-agent: the boot snapshot could not be read", error);
    return null;
  }
}

/** Read the stored snapshot and give it to a new worker (transferred, not copied). */
export async function offerBootSnapshot(worker, scope = document.baseURI) {
  const snapshot = await loadBootSnapshot(scope);
  worker.postMessage({ type: "boot_snapshot", snapshot }, snapshot ? [snapshot] : []);
}

/** Keep a snapshot a booting worker made, replacing the one stored. */
export async function keepBootSnapshot(snapshot, scope = document.baseURI) {
  try {
    if (!globalThis.caches || !(snapshot instanceof ArrayBuffer)) return false;
    const cache = await caches.open(BOOT_CACHE);
    await cache.put(entryUrl(scope), new Response(snapshot, { headers: { "Content-Type": "application/octet-stream" } }));
    return true;
  } catch (error) {
    // A full disk or a private window: the next visit boots from the packages again.
    console.warn("py-agent: the boot snapshot could not be kept", error);
    return false;
  }
}

/** Forget the stored snapshot (the next boot makes a new one). */
export async function dropBootSnapshot(scope = document.baseURI) {
  if (!globalThis.caches) return;
  const cache = await caches.open(BOOT_CACHE);
  await cache.delete(entryUrl(scope));
}

/**
 * Boot a worker of `workerUrl` (worker.js) in the background only to make a snapshot, and
 * keep it. Resolves to {kept, bytes, ms, timings} or {kept: false, error}; never rejects. The
 * worker ends itself when done (and is terminated if it fails).
 */
export function makeBootSnapshot(workerUrl, schema, scope = document.baseURI) {
  return new Promise((resolve) => {
    const worker = new Worker(workerUrl, { type: "module" });
    let kept = Promise.resolve(false);
    let bytes = 0;
    const finish = async (result) => {
      worker.terminate();
      resolve({ ...result, bytes, kept: await kept });
    };
    worker.onmessage = ({ data: message }) => {
      if (message.type === "boot_snapshot") {
        bytes = message.snapshot?.byteLength || 0;
        kept = keepBootSnapshot(message.snapshot, scope);
      }
      else if (message.type === "snapshot_made") finish({ ms: message.ms, timings: message.timings, error: message.made ? null : "no snapshot was made" });
      else if (message.type === "fatal") finish({ error: message.message });
    };
    worker.onerror = (event) => finish({ error: event.message || "the snapshot worker failed to start" });
    worker.postMessage({ type: "init", purpose: "snapshot", schema, shared: null, testHooks: false });
  });
}

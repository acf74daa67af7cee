// The worker's wall: the first module the agent worker evaluates (worker.js imports it
// before Pyodide), so it runs before any other code in the worker exists.
//
// Model code runs in this worker. The validator and the run-time layer keep it away
// from JavaScript; this wall assumes they failed, and that hostile code holds the
// worker's global object. It removes every way to reach what the page trusts:
//   - what the page loads or keeps: Cache Storage (the service worker's offline copy),
//     IndexedDB (saved database and conversation), the origin's other storage
//     (navigator.storage/OPFS, storage buckets, the old file-system API);
//   - the page's coordination between tabs (Web Locks, BroadcastChannel), which a
//     hostile worker could use to make the real writer stand down;
//   - new workers (a nested worker would start with a fresh, unwalled global), and the
//     service worker container.
// localStorage (where a remembered key lives) and cookies do not exist in workers.
// What stays: fetch to this origin only (the worker's CSP, connect-src 'self'), and
// postMessage to the page, which checks everything it keeps (checks.js) and never
// sends the key (shim.js). The service worker verifies what it serves offline
// against hashes from the build (sw.js), as a second line behind this one.

export const REMOVED_GLOBALS = [
  "caches", "indexedDB", "BroadcastChannel", "Worker", "SharedWorker", "ServiceWorker",
  "webkitRequestFileSystem", "webkitRequestFileSystemSync", "webkitResolveLocalFileSystemURL",
  "requestFileSystem", "requestFileSystemSync", "cookieStore", "FileSystemObserver",
];
export const REMOVED_NAVIGATOR = ["storage", "storageBuckets", "locks", "serviceWorker", "webkitPersistentStorage", "webkitTemporaryStorage"];

/** Delete `name` wherever it is defined along `target`'s prototype chain; true if gone. */
function remove(target, name) {
  for (let object = target; object; object = Object.getPrototypeOf(object)) {
    if (!Object.hasOwn(object, name)) continue;
    if (!Reflect.deleteProperty(object, name)) {
      // Not configurable: shadow it on the object itself, read-only.
      Object.defineProperty(target, name, { value: undefined, writable: false, configurable: false });
      break;
    }
  }
  return target[name] === undefined;
}

export function buildWall(scope = globalThis) {
  const left = [];
  for (const name of REMOVED_GLOBALS) if (!remove(scope, name)) left.push(name);
  if (scope.navigator) for (const name of REMOVED_NAVIGATOR) if (!remove(scope.navigator, name)) left.push(`navigator.${name}`);
  return left;
}

const left = buildWall();
if (left.length) throw new Error(`the worker could not remove ${left.join(", ")}; refusing to run model code`);

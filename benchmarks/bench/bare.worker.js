// Bare boot: loadPyodide() and nothing else, as the baseline for the agent's boot time.
import { loadPyodide } from "../pyodide/pyodide.mjs";

self.onmessage = async () => {
  const t0 = performance.now();
  try {
    const pyodide = await loadPyodide({ indexURL: new URL("../pyodide/", import.meta.url).href });
    pyodide.runPython("1 + 1");
    const timings = { pyodide: performance.now() - t0 };
    self.postMessage({ type: "ready", timings, resources: resources() });
  } catch (error) {
    self.postMessage({ type: "error", message: String(error && error.message || error) });
  }
};

function resources() {
  return performance.getEntriesByType("resource").map((e) => ({
    name: e.name, transferSize: e.transferSize, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize,
  }));
}

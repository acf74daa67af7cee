// Bare boot: loadPyodide() and nothing else, as the baseline for the agent's boot time.
// (bench/stock_python_stdlib.zip is made by `python build.py bench`.)
import { loadPyodide } from "../pyodide/pyodide.mjs";

// With stdlib=stock, Pyodide's own python_stdlib.zip (sources only) instead of the site's.
self.onmessage = async (event) => {
  const t0 = performance.now();
  try {
    const options = { indexURL: new URL("../pyodide/", import.meta.url).href };
    if (event.data.stdlib === "stock") options.stdLibURL = new URL("stock_python_stdlib.zip", import.meta.url).href;
    const pyodide = await loadPyodide(options);
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

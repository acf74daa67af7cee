// The API key stays in the page. Every message between the page and the worker is
// recorded (by wrapping Worker before the app loads) and searched for the key, and so
// are Python's WebAssembly memory and its files; the model server, meanwhile, must
// have received the key in its Authorization header.
import { expect, test } from "@playwright/test";
import { debugPython, openApp, scripted, startFakeModel, useFakeModel } from "./helpers";

const KEY = "sk-e2e-7f3a9c1d-never-in-the-worker";

test("the key reaches the model server but never the worker", async ({ page }) => {
  await page.addInitScript(() => {
    const traffic: string[] = ((window as any).__traffic = []);
    // Typed arrays become latin1 text so that bytes can be searched too.
    const serialize = (value: unknown) =>
      JSON.stringify(value, (_key, v) => {
        if (v instanceof ArrayBuffer) v = new Uint8Array(v);
        if (ArrayBuffer.isView(v)) return `bytes:${new TextDecoder("latin1").decode(v as Uint8Array)}`;
        if (typeof SharedArrayBuffer !== "undefined" && v instanceof SharedArrayBuffer) return "shared memory";
        return v;
      });
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, message: any, transfer?: any) {
      traffic.push(`to worker ${serialize(message)}`); // before transfer detaches anything
      return post.call(this, message, transfer);
    } as any;
    const Original = Worker;
    (window as any).Worker = class extends Original {
      constructor(url: string | URL, options?: WorkerOptions) {
        super(url, options);
        this.addEventListener("message", (event) => traffic.push(`from worker ${serialize(event.data)}`));
      }
    };
  });
  const model = await startFakeModel(
    scripted({ message: "Counting.", code: "print(session.scalar(select(func.count()).select_from(Author)))" }, { message: "Ten authors.", code: "" }),
  );
  try {
    await openApp(page);
    await useFakeModel(page, model, { key: KEY });
    const end = await page.evaluate(() => (window as any).pyAgent.send("How many authors? (key test)"));
    expect(end.reason).toBe("done");

    // The key did its job: the page added it to the model's requests.
    expect(model.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${KEY}`, `Bearer ${KEY}`]);

    // Every message crossing to or from the worker, including the completion requests,
    // the streamed bytes and the database snapshots, is free of it.
    const traffic: string[] = await page.evaluate(() => (window as any).__traffic);
    expect(traffic.some((m) => m.startsWith('to worker {"type":"fetch_chunk"'))).toBe(true);
    expect(traffic.some((m) => m.startsWith('from worker {"type":"fetch"'))).toBe(true);
    expect(traffic.filter((m) => m.includes(KEY))).toEqual([]);
    expect(traffic.filter((m) => m.includes("7f3a9c1d"))).toEqual([]);

    // Nor is it anywhere in Python's memory or files. The scanner does find what is
    // there: the person's message, which Python holds.
    const scan = await page.evaluate((key) => (window as any).pyAgent.scan(key), KEY);
    expect(scan.heapBytes).toBeGreaterThan(10e6);
    expect(scan.heap).toBe(0);
    expect(scan.files).toEqual([]);
    const control = await page.evaluate(() => (window as any).pyAgent.scan("How many authors? (key test)"));
    expect(control.heap).toBeGreaterThan(0);
    expect(await debugPython(page, `import os\nresult = [k for k, v in os.environ.items() if "7f3a9c1d" in v]`)).toEqual([]);

    // Not remembered: the key lives in the page's memory only.
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
    expect(stored).not.toContain(KEY);
  } finally {
    await model.close();
  }
});

// Brotli-compress files (quality 11, 16 MB window) for the server to send as-is.
//
// Usage: node tools/precompress.mjs JOBS.json    with JOBS.json = [{"src": ..., "dst": ...}]
// Python's standard library has no brotli; Node's zlib has. Called by `python build.py build`,
// which caches the results by content hash. Jobs run on libuv's thread pool, in parallel.
import fs from "node:fs";
import zlib from "node:zlib";
import { promisify } from "node:util";

const brotli = promisify(zlib.brotliCompress);
const jobs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

await Promise.all(
  jobs.map(async ({ src, dst }) => {
    const data = fs.readFileSync(src);
    const out = await brotli(data, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    });
    fs.writeFileSync(dst + ".tmp", out);
    fs.renameSync(dst + ".tmp", dst);
  }),
);

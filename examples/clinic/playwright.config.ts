// Playwright for the clinic's site, as another project would set it up for its own app:
//
//   npm install --save-dev @playwright/test && npx playwright install chromium
//   npx playwright test -c examples/clinic/playwright.config.ts
//
// Two web servers: the site (`py-agent build`, then any static server: here Python's, which
// sends no special headers, like GitHub Pages) and a fake model of py_agent.testing.
import { defineConfig } from "@playwright/test";

const SITE_PORT = 47990;
const FAKE_MODEL_PORT = 47991;
process.env.FAKE_MODEL_URL ||= `http://127.0.0.1:${FAKE_MODEL_PORT}`;

export default defineConfig({
  testDir: "tests",
  timeout: 120_000, // Python boots in the page (a few seconds; more on a small machine)
  expect: { timeout: 30_000 },
  use: {
    baseURL: `http://127.0.0.1:${SITE_PORT}`,
    browserName: "chromium",
    // launchOptions: { executablePath: "/usr/bin/chromium" },  // a system Chromium, if you use one
  },
  webServer: [
    {
      command: `py-agent build examples/clinic/clinic --out .site/clinic && python3 -m http.server ${SITE_PORT} --bind 127.0.0.1 --directory .site/clinic`,
      url: `http://127.0.0.1:${SITE_PORT}/build.json`,
      timeout: 600_000, // the first build downloads and compiles the runtime
      reuseExistingServer: !process.env.CI,
    },
    {
      command: `python3 -m py_agent.testing.fake_server --format openai --no-auth --port ${FAKE_MODEL_PORT}`,
      url: `http://127.0.0.1:${FAKE_MODEL_PORT}/health`,
      reuseExistingServer: !process.env.CI,
    },
  ],
});

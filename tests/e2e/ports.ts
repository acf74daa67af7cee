// The two static servers of the suite (see playwright.config.ts). No imports here:
// the config and the specs both read this file.
export const ISOLATED_PORT = Number(process.env.PY_AGENT_E2E_PORT || 47810);
export const PLAIN_PORT = ISOLATED_PORT + 1;

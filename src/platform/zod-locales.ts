/**
 * The zod locales the worker ships: English only. wrangler.toml's `[alias]` points zod's locale index here, because
 * `import { z } from "zod"` otherwise bundles every language's messages (a fifth of the bundle) for an API that
 * answers in English with its own configured messages.
 */
export { default as en } from "zod/v4/locales/en.js";

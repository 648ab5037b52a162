/**
 * `npm run openapi` writes the OpenAPI document the worker serves at /openapi.json to a file (default
 * dist/openapi.json), without a server: `openapi:lint` lints that file with Redocly.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { register } from "node:module";
import { dirname, join } from "node:path";

// The app's import graph reaches the Durable Object classes, which extend `cloudflare:workers` classes that only
// workerd provides. Building the document never runs them, so empty classes stand in for those imports here.
const runtime = "export class DurableObject {} export class WorkerEntrypoint {} export const env = {};";
const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === "cloudflare:workers") return { url: ${JSON.stringify(`data:text/javascript,${encodeURIComponent(runtime)}`)}, shortCircuit: true };
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);

const { app } = await import("../src/app");
const { openApiDocument } = await import("../src/openapi/document");

const out = process.argv[2] ?? join(import.meta.dirname, "..", "dist", "openapi.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(openApiDocument(app), null, 2)}\n`);
console.log(`wrote ${out}`);

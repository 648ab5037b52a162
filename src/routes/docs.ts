/** GET /openapi.json (generated from the routes' zod schemas) and GET /docs, a readable page rendered from it. */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { ERROR_STATUS } from "../errors";
import type { AppEnv } from "../http";

const INFO = {
  title: "Fanfare API",
  version: "0.1.0",
  description:
    "Marketing activities at the edge. Consumers run tasks configured in YAML; every failure answers " +
    '`{"ok":false,"requestId":…,"error":{"code":…,"message":…}}` with a stable code.',
};

type Doc = ReturnType<OpenAPIHono<AppEnv>["getOpenAPI31Document"]>;

const esc = (s: unknown) =>
  String(s ?? "").replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]!);

function schemaText(schema: unknown): string {
  return esc(JSON.stringify(schema, null, 2));
}

export function renderDocs(doc: Doc): string {
  const ops: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item as Record<string, any>)) {
      const params = (op.parameters ?? []) as { name: string; in: string; required?: boolean; description?: string }[];
      const body = op.requestBody?.content?.["application/json"]?.schema;
      const responses = Object.entries((op.responses ?? {}) as Record<string, { description?: string }>);
      ops.push(`<section class="op">
<h3><span class="m ${esc(method)}">${esc(method.toUpperCase())}</span> <code>${esc(path)}</code></h3>
<p><strong>${esc(op.summary)}</strong></p>${op.description ? `<p>${esc(op.description)}</p>` : ""}
${params.length ? `<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Description</th></tr>${params.map((p) => `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${p.required ? "yes" : "no"}</td><td>${esc(p.description)}</td></tr>`).join("")}</table>` : ""}
${body ? `<details><summary>Request body</summary><pre>${schemaText(body)}</pre></details>` : ""}
<table><tr><th>Status</th><th>Meaning</th></tr>${responses.map(([s, r]) => `<tr><td>${esc(s)}</td><td>${esc(r.description)}</td></tr>`).join("")}</table>
</section>`);
    }
  }
  const codes = Object.entries(ERROR_STATUS)
    .map(([code, status]) => `<tr><td><code>${code}</code></td><td>${status}</td></tr>`)
    .join("");
  const schemas = Object.entries(doc.components?.schemas ?? {})
    .map(([name, s]) => `<details><summary>${esc(name)}</summary><pre>${schemaText(s)}</pre></details>`)
    .join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(INFO.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d232a}
h1{margin-bottom:.2rem} .op{border:1px solid #d8dee4;border-radius:8px;padding:.4rem 1rem;margin:1rem 0}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #d8dee4;padding:.25rem .6rem;text-align:left}
.m{display:inline-block;min-width:3.5rem;text-align:center;border-radius:4px;color:#fff;font-size:.8rem;padding:.1rem .3rem}
.get{background:#1f6feb}.post{background:#2da44e}.put,.patch{background:#bf8700}.delete{background:#cf222e}
pre{background:#f6f8fa;padding:.6rem;overflow:auto} code{font-size:.9em}
</style></head><body>
<h1>${esc(INFO.title)} <small>${esc(INFO.version)}</small></h1>
<p>${esc(INFO.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. Authentication: <code>Authorization: Bearer &lt;JWT&gt;</code> with the user id in <code>sub</code>.</p>
<h2>Endpoints</h2>${ops.join("\n")}
<h2>Error codes</h2><table><tr><th>Code</th><th>HTTP status</th></tr>${codes}</table>
<h2>Schemas</h2>${schemas}
</body></html>`;
}

export function registerDocs(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
  const document = () => app.getOpenAPI31Document({ openapi: "3.1.0", info: INFO });
  app.get("/openapi.json", (c) => c.json(document()));
  app.get("/docs", (c) => c.html(renderDocs(document())));
}

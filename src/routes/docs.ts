/**
 * GET /openapi.json (generated from the routes' definitions) and GET /docs, the Scalar reference page that renders
 * it. The page's script is a static asset of this worker (public/scalar/, copied from node_modules by
 * scripts/assets.mjs, wrangler's build step), so the reference works without any CDN.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../http";
import { openApiDocument } from "../openapi/document";
import { success } from "../openapi/responses";

/** Where `scripts/assets.mjs` puts Scalar's standalone bundle under the assets directory. */
const SCALAR_SCRIPT = "/scalar/standalone.js";

const routes = {
  document: createRoute({
    method: "get",
    path: "/openapi.json",
    operationId: "getOpenApiDocument",
    tags: ["Operations"],
    summary: "This API's OpenAPI 3.1 document",
    security: [],
    responses: { 200: success(z.record(z.string(), z.unknown()).openapi({ description: "An OpenAPI 3.1 document" }), "The document") },
  }),
  page: createRoute({
    method: "get",
    path: "/docs",
    operationId: "getDocsPage",
    tags: ["Operations"],
    summary: "The API reference, rendered from /openapi.json",
    security: [],
    responses: { 200: success(z.string(), "An HTML page", {}, 200, "text/html") },
  }),
};

// Everything that would reach Scalar's servers is off (its CDN fonts, telemetry, the AI agent, the hosted
// developer tools): the page works offline and sends nothing about its readers anywhere.
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fanfare API reference</title>
</head>
<body>
<div id="app"></div>
<script src="${SCALAR_SCRIPT}"></script>
<script>
Scalar.createApiReference("#app", {
  url: "/openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  showDeveloperTools: "never",
  persistAuth: true,
  defaultHttpClient: { targetKey: "shell", clientKey: "curl" },
});
</script>
</body>
</html>`;

export function registerDocs(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "A consumer's JWT, the user id in `sub` (`npm run token -- alice` mints one locally)",
  });
  app.openapi(routes.document, (c) => c.json(openApiDocument(app), 200));
  app.openapi(routes.page, (c) => c.html(PAGE, 200));
}

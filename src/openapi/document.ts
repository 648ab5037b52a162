/** The OpenAPI 3.1 document of the app, generated from the routes' definitions. */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../http";

const INFO = {
  title: "Fanfare API",
  version: "0.1.0",
  description:
    "Marketing activities at the edge. Consumers run tasks configured in YAML, draw and claim prizes and grab " +
    'flash-sale stock; operators manage pools and sales. Every failure answers `{"ok":false,"requestId":…,' +
    '"error":{"code":…,"message":…}}`; each response lists the codes the route can answer.',
  license: { name: "Proprietary", identifier: "LicenseRef-Proprietary" },
};

/** The document as /openapi.json serves it; `openapi:lint` checks this same function's output. */
export function openApiDocument(app: OpenAPIHono<AppEnv>) {
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: INFO,
    // Relative: the document describes whichever deployment serves it (try-it in /docs calls the same origin).
    servers: [{ url: "/", description: "This deployment" }],
    tags: [
      { name: "Tasks", description: "Run an activity's tasks and read your state in it" },
      { name: "Prizes", description: "Claim what a lottery drew" },
      { name: "Flash sales", description: "Take a stock token, check out with it, or give it back" },
      { name: "Tickets", description: "The outcome of a queued grab or task run (`intake: queue`)" },
      { name: "Membership", description: "Identities as SKUs on a timeline: the user's identities, eligibility, grants and refunds" },
      { name: "Users", description: "Users' profile attributes: set by business systems (service keys), read by the user" },
      { name: "Benefits", description: "The benefits center: the user's rights with the reason for each, and passive discounts for orders" },
      { name: "Partners", description: "Third-party benefits: a user's redirect to a partner, and the partner's signed callbacks" },
      { name: "Admin", description: "Operator API (ADMIN_TOKEN): prize pools, flash sales, service keys and partners" },
      { name: "Operations", description: "Liveness and this reference" },
    ],
  });
}

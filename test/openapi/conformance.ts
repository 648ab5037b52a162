/**
 * Holds the worker's real answers to its OpenAPI document: `call()` passes every response through `checkResponse`,
 * so each test of the suite also checks that the status is declared for its operation and that the body matches
 * the schema declared for that status and content type (error codes included: each response lists its own).
 */
import { exports } from "cloudflare:workers";
import { z } from "zod";

interface MediaType {
  schema?: unknown;
}
interface Operation {
  operationId: string;
  responses: Record<string, { content?: Record<string, MediaType>; headers?: Record<string, unknown> }>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; headers: Record<string, unknown> };
}

interface Route {
  pattern: RegExp;
  operations: Record<string, Operation>;
}

let loaded: Promise<{ doc: Document; routes: Route[] }> | undefined;
const validators = new Map<unknown, z.ZodType>();

/**
 * Objects closed to properties they do not list: JSON Schema lets an answer carry fields its document never
 * mentions, and a field the document omits is a mismatch all the same.
 */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== "object") return schema;
  const out = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === "example" ? v : closed(v)]));
  if (out.type === "object" && out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

/** The document as the worker serves it, its schema references rewritten to the `$defs` that zod resolves. */
function load() {
  loaded ??= (async () => {
    const res = await exports.default.fetch(new Request("https://fanfare.test/openapi.json"));
    const text = (await res.text()).replaceAll('"#/components/schemas/', '"#/$defs/');
    const doc = closed(JSON.parse(text)) as Document;
    const routes = Object.entries(doc.paths).map(([path, operations]) => ({
      pattern: new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+")}$`),
      operations,
    }));
    return { doc, routes };
  })();
  return loaded;
}

function validator(doc: Document, schema: unknown): z.ZodType {
  let v = validators.get(schema);
  if (!v) {
    const root = { $schema: "https://json-schema.org/draft/2020-12/schema", $defs: doc.components.schemas, ...(schema as object) };
    v = z.fromJSONSchema(root as Parameters<typeof z.fromJSONSchema>[0], { registry: z.registry() });
    validators.set(schema, v);
  }
  return v;
}

/**
 * What is wrong with an answer by the document, or undefined when it conforms. Requests the document does not
 * describe (an unknown path or method, answered by the catch-all) are not checked.
 */
export async function checkResponse(method: string, url: URL, res: Response, text: string): Promise<string | undefined> {
  const { doc, routes } = await load();
  const operation = routes.find((r) => r.pattern.test(decodeURI(url.pathname)))?.operations[method.toLowerCase()];
  if (!operation) return undefined;
  const where = `${method} ${url.pathname} (${operation.operationId}) answered ${res.status}`;
  const declared = operation.responses[String(res.status)];
  if (!declared) return `${where}, a status its document does not declare: ${text.slice(0, 300)}`;
  // The protocol headers (Retry-After, RateLimit, …) an answer carries are the ones its response declares.
  const listed = new Set(Object.keys(declared.headers ?? {}).map((h) => h.toLowerCase()));
  const undeclared = Object.keys(doc.components.headers).filter((h) => res.headers.has(h) && !listed.has(h.toLowerCase()));
  if (undeclared.length > 0) return `${where} with headers its document does not declare for it: ${undeclared.join(", ")}`;
  const mediaType = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
  if (!declared.content) return text === "" ? undefined : `${where} with a body its document does not declare`;
  const media = declared.content[mediaType];
  if (!media) return `${where} as ${mediaType || "no content type"}; declared: ${Object.keys(declared.content).join(", ")}`;
  if (!mediaType.endsWith("json") || media.schema === undefined) return undefined;
  const result = validator(doc, media.schema).safeParse(JSON.parse(text));
  if (result.success) return undefined;
  const issues = result.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ");
  return `${where} with a body that does not match its declared schema: ${issues}\n${text.slice(0, 500)}`;
}

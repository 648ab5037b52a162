/**
 * Request bodies: at most `maxBytes` (counted as read, so a chunked body without Content-Length is held to it too)
 * and JSON. Applied once in front of every route, before any handler or validator reads the body.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AppError } from "../../../errors";
import type { AppEnv } from "../../../http";

/** Every request body, on every route: task params, tokens, admin definitions. */
export const MAX_BODY_BYTES = 16 * 1024;

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** A route that takes larger bodies, or other types than JSON (a code import's CSV). */
export interface BodyException {
  path: RegExp;
  maxBytes: number;
  types: RegExp;
  /** The types, as the refusal names them. */
  named: string;
}

const limitOf = (maxBytes: number) =>
  bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new AppError("PAYLOAD_TOO_LARGE", `the request body is over ${maxBytes / 1024} KB`);
    },
  });

export function jsonBody(options: { maxBytes: number; exceptions?: BodyException[] }): MiddlewareHandler<AppEnv> {
  const rules = [
    ...(options.exceptions ?? []).map((e) => ({ ...e, limit: limitOf(e.maxBytes) })),
    { path: /^/, types: JSON_TYPE, named: "application/json", limit: limitOf(options.maxBytes) },
  ];
  return async function jsonBody(c, next) {
    const req = c.req.raw;
    // GET and DELETE bodies are never read; an empty POST (a body-less action such as close) needs no type.
    if (req.body === null || c.req.method === "GET" || c.req.method === "HEAD") return next();
    const rule = rules.find((r) => r.path.test(c.req.path))!;
    const type = c.req.header("content-type");
    const empty = c.req.header("content-length") === "0";
    if (type === undefined ? !empty : !rule.types.test(type)) {
      throw new AppError("UNSUPPORTED_MEDIA_TYPE", `send the request body as ${rule.named}`);
    }
    return rule.limit(c, next);
  };
}

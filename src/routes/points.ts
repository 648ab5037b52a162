/**
 * The signed-in user's points: GET /v1/me/points (balances, what expires soon, history paged newest first) and
 * POST /v1/points/redeem (Idempotency-Key required: the answer replays for the same key).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { checkKey, requestFingerprint, withIdempotency } from "../accounts/idempotency";
import { requireUser, signedInUser } from "../auth/require-user";
import { ConfigIdSchema } from "../config/id";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { cursorAfter, entryAnswer, readCursor, RedeemAnswerSchema, StatementSchema } from "../points/answers";
import { programOf } from "../points/program";
import { AdjustAnswerSchema, AdjustBodySchema, adjustPoints } from "../points/adjust";
import { requireService, serviceCaller } from "../auth/service";

/** Where redeem Idempotency-Keys live in the user's account: `:` keeps it apart from every activity's namespace. */
const REDEEM_KEYS = "points:redeem";
const SOON_MS = 30 * 86_400_000;
const DEFAULT_PAGE = 20;

const statementRoute = createRoute({
  method: "get",
  path: "/v1/me/points",
  operationId: "getMyPoints",
  tags: ["Points"],
  summary: "The user's points of a program: balances, what expires soon, history",
  security: [{ bearer: [] }],
  request: {
    query: z.object({
      program: ConfigIdSchema.openapi({ example: "honey" }),
      cursor: z.string().max(200).optional().openapi({ description: "`nextCursor` of the previous page" }),
      limit: z.coerce.number().int().min(1).max(100).default(DEFAULT_PAGE),
    }),
  },
  responses: {
    200: success(StatementSchema, "The user's points"),
    ...errorResponses({
      INVALID_PARAMS: "a malformed program, cursor or limit",
      UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
      NOT_FOUND: "no such point program",
      ...ALWAYS,
    }),
  },
});

const RedeemBodySchema = z
  .object({
    program: ConfigIdSchema.openapi({ example: "honey" }),
    amount: z.number().int().min(1).max(1_000_000_000),
    reason: z.string().min(1).max(200).optional(),
  })
  .strict()
  .openapi("PointsRedeem");

const replayable = { replayable: true };
const redeemRoute = createRoute({
  method: "post",
  path: "/v1/points/redeem",
  operationId: "redeemPoints",
  tags: ["Points"],
  summary: "Redeem spendable points",
  description:
    "Spends `amount` spendable points of the program, those that expire first first. Refused with " +
    "INSUFFICIENT_POINTS (nothing spent) when fewer are spendable: the balance never goes below zero. The " +
    "Idempotency-Key is required; a retry with the same key and body gets the first answer.",
  security: [{ bearer: [] }],
  request: {
    headers: z.object({ "idempotency-key": z.string().openapi({ description: "Required: replays the first answer for 24 h" }) }),
    body: { content: { "application/json": { schema: RedeemBodySchema } }, required: true },
  },
  responses: {
    200: success(RedeemAnswerSchema, "Redeemed", replayable),
    ...errorResponses(
      {
        ...BODY_ERRORS,
        INVALID_PARAMS: "a malformed body, or a missing or malformed Idempotency-Key",
        UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
        NOT_FOUND: "no such point program",
        INSUFFICIENT_POINTS: "fewer spendable points than `amount`",
        LOCKED: "the Idempotency-Key's first request is still running",
        IDEMPOTENCY_MISMATCH: "the Idempotency-Key was used with a different request",
        ...ALWAYS,
      },
      replayable,
    ),
  },
});

export function registerPoints(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/me/points", requireUser("sign in to see your points"));
  app.openapi(statementRoute, async (c) => {
    const user = signedInUser(c);
    const { program: id, cursor, limit } = c.req.valid("query");
    const program = programOf(await activeConfig(c.env), id);
    const before = cursor === undefined ? undefined : readCursor(cursor);
    if (cursor !== undefined && before === undefined) throw new AppError("INVALID_PARAMS", "cursor: not a cursor of this list");
    const now = c.get("now");
    // One entry more than the page: whether there is a next one.
    const s = await userAccount(c.env, user.id).pointStatement(user.id, program.id, now, { before, limit: limit + 1, soonUntil: now + SOON_MS });
    const page = s.entries.slice(0, limit);
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        userId: user.id,
        program: { id: program.id, name: program.name },
        balance: s.balance,
        active: s.active,
        pending: s.pending,
        expiringSoon: s.expiringSoon.map((e) => ({ amount: e.amount, expiresAt: new Date(e.expiresAt).toISOString() })),
        entries: page.map(entryAnswer),
        nextCursor: s.entries.length > limit ? cursorAfter(page[page.length - 1]!.id) : null,
      },
      200,
    );
  });

  app.use("/v1/points/redeem", requireUser("sign in to redeem points"));
  app.openapi(
    redeemRoute,
    async (c) => {
      const user = signedInUser(c);
      const body = c.req.valid("json");
      const key = checkKey(c.req.valid("header")["idempotency-key"]);
      const program = programOf(await activeConfig(c.env), body.program);
      const requestId = c.get("requestId");
      const account = userAccount(c.env, user.id);
      const fingerprint = await requestFingerprint("POST", c.req.url, body);
      return withIdempotency({ account, namespace: REDEEM_KEYS, key, fingerprint }, requestId, async () => {
        const r = await account.redeemPoints(
          user.id,
          program,
          // The key is the redeem's reference too: even after the key's 24 h, the same key never spends twice.
          { amount: body.amount, sourceRef: `redeem:${key}`, reason: body.reason ?? "redeemed", now: c.get("now") },
          { namespace: REDEEM_KEYS, key, requestId },
        );
        if (!r.ok) throw new AppError(r.code, r.message);
        if (!("answer" in r)) throw new Error("a redeem under an Idempotency-Key answers with its stored answer");
        return new Response(r.answer, { status: 200, headers: { "content-type": "application/json" } });
      });
    },
    // A missing Idempotency-Key is a malformed request like any other header: INVALID_PARAMS.
  );

  app.use("/v1/points/adjust", requireService("points:adjust"));
  app.openapi(adjustRoute, async (c) => {
    const answer = await adjustPoints(c.env, await activeConfig(c.env), c.req.valid("json"), {
      requestId: c.get("requestId"),
      now: c.get("now"),
      keyId: serviceCaller(c).id,
    });
    return c.json(answer, 200);
  });
}

const adjustRoute = createRoute({
  method: "post",
  path: "/v1/points/adjust",
  operationId: "adjustPoints",
  tags: ["Points"],
  summary: "Adjust a user's points (a business system's correction)",
  description:
    "A credit is spendable at once; a debit is refused with INSUFFICIENT_POINTS beyond the balance. The same " +
    "`sourceRef` is the same adjustment: repeated, it answers the first entry (`replayed: true`) and changes nothing.",
  security: [{ service: [] }],
  request: { body: { content: { "application/json": { schema: AdjustBodySchema } }, required: true } },
  responses: {
    200: success(AdjustAnswerSchema, "Adjusted, or the first adjustment of this sourceRef"),
    ...errorResponses({
      ...BODY_ERRORS,
      INVALID_PARAMS: "a malformed body",
      UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
      WRONG_CREDENTIALS: "a user's or the operator's token: this route takes a service key",
      MISSING_SCOPE: "the key lacks points:adjust",
      NOT_FOUND: "no such point program",
      INSUFFICIENT_POINTS: "a debit beyond the user's spendable points",
      ...ALWAYS,
    }),
  },
});

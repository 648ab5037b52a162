/** Partners in tests: defined through the admin API, played by the real partner server (test/partner-server.ts). */
import { checkResponse } from "../openapi/conformance";
import { env, exports } from "cloudflare:workers";
import { call, token, unique } from "../helpers";

export const PARTNER_SERVER = env.TEST_PARTNER_URL;
export const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

/** Defines a partner whose endpoints are the partner server's, and hands it the secret Fanfare issued. */
export async function definePartner(fields: Record<string, unknown> = {}) {
  const id = `p-${unique()}`;
  const res = await call("/v1/admin/partners", {
    headers: operator,
    body: {
      id,
      name: `Partner ${id}`,
      url: `${PARTNER_SERVER}/partners/${id}/deliveries`,
      redirectUrl: `https://${id}.example/landing?src=fanfare`,
      ...fields,
    },
  });
  if (res.status !== 201) throw new Error(`partner not defined: ${res.status} ${JSON.stringify(res.json)}`);
  await partnerSetup(id, { secrets: [res.json.key.secret] });
  return { id, key: res.json.key as { keyId: string; secret: string }, partner: res.json.partner };
}

/** Tells the partner server which secrets it holds and how to answer its next deliveries. */
export async function partnerSetup(id: string, setup: { secrets?: string[]; answers?: { status: number; body?: unknown }[] }) {
  await fetch(`${PARTNER_SERVER}/partners/${id}/setup`, { method: "POST", body: JSON.stringify(setup) });
}

/** The deliveries the partner received, each with the index of the secret that verified it (null: none did). */
export async function partnerReceived(id: string): Promise<{ headers: Record<string, string>; body: any; verifiedBy: number | null }[]> {
  return (await fetch(`${PARTNER_SERVER}/partners/${id}/received`)).json();
}

/**
 * A callback as the partner sends it: signed by the partner server with its secret (or `secret`), at `timestamp`
 * (seconds; default now), then relayed to the worker.
 */
export async function partnerCallback(
  partnerId: string,
  c: { webhookId: string; body: unknown; secret?: string; timestamp?: number; now?: number | string },
) {
  const signed = (await (
    await fetch(`${PARTNER_SERVER}/partners/${partnerId}/sign`, {
      method: "POST",
      body: JSON.stringify({ secret: c.secret, id: c.webhookId, timestamp: c.timestamp, body: c.body }),
    })
  ).json()) as { headers: Record<string, string>; body: string };
  return call(`/v1/partners/${partnerId}/callbacks`, { rawBody: signed.body, headers: signed.headers, now: c.now });
}

/** The user's redirect to a benefit's partner: the 302's location and the ticket in it. */
export async function redirect(user: string, benefit: string, now?: number | string) {
  const url = new URL(`https://fanfare.test/v1/benefits/${benefit}/redirect`);
  const headers: Record<string, string> = { authorization: `Bearer ${await token(user)}` };
  if (now !== undefined) headers["x-fanfare-now"] = String(now);
  const res = await exports.default.fetch(new Request(url, { headers, redirect: "manual" }));
  const text = await res.text();
  const mismatch = await checkResponse("GET", url, res, text);
  if (mismatch) throw new Error(`OpenAPI mismatch: ${mismatch}`);
  const location = res.headers.get("location");
  return { status: res.status, location, ticket: location ? new URL(location).searchParams.get("ticket") : null, body: text };
}

/** What a ticket tells its partner (its payload, unverified). */
export function ticketClaims(ticket: string): Record<string, unknown> {
  const payload = ticket.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/");
  return JSON.parse(atob(payload));
}

/**
 * The partners' cryptography, all derived from one worker secret, PARTNER_SECRETS_KEY (HKDF-SHA256, one key per use):
 * partners' Standard Webhooks secrets encrypted at rest (AES-GCM; they sign and verify HMACs, so a hash would not do),
 * the pseudonymous user id a partner sees (a keyed hash, per partner), and the signature of redirect tickets.
 */
import type { Env } from "../env";
import { AppError } from "../errors";
import { vars } from "../platform/vars";
import { randomId } from "../random";

/** The uses of the master secret: each gets its own derived key, so one can never stand in for another. */
type Use = "partner-keys" | "ticket-users" | "tickets" | "pseudonyms";

let derived: { master: string; keys: Map<Use, Promise<CryptoKey>> } | undefined;

function masterSecret(env: Env): Uint8Array {
  const master = vars(env).PARTNER_SECRETS_KEY;
  if (!master) throw new AppError("UNAVAILABLE", "partners are not configured: set PARTNER_SECRETS_KEY");
  return fromBase64(master);
}

/** The derived key for one use, made once per isolate (and again when the master secret changes). */
function keyFor(env: Env, use: Use): Promise<CryptoKey> {
  const master = env.PARTNER_SECRETS_KEY ?? "";
  if (derived?.master !== master) derived = { master, keys: new Map() };
  let key = derived.keys.get(use);
  if (!key) {
    const bytes = masterSecret(env);
    key = crypto.subtle
      .importKey("raw", bytes, "HKDF", false, ["deriveKey"])
      .then((base) =>
        crypto.subtle.deriveKey(
          { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: new TextEncoder().encode(`fanfare/${use}`) },
          base,
          use === "partner-keys" || use === "ticket-users" ? { name: "AES-GCM", length: 256 } : { name: "HMAC", hash: "SHA-256", length: 256 },
          false,
          use === "partner-keys" || use === "ticket-users" ? ["encrypt", "decrypt"] : ["sign", "verify"],
        ),
      );
    key.catch(() => derived?.keys.delete(use));
    derived.keys.set(use, key);
  }
  return key;
}

/** A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${toBase64(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** Encrypts a value; `context` (e.g. the partner and key id) is bound to it, so a ciphertext cannot be moved to another row. */
export async function seal(env: Env, use: "partner-keys" | "ticket-users", plain: string, context: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(context) },
    await keyFor(env, use),
    new TextEncoder().encode(plain),
  );
  return toBase64(concat(iv, new Uint8Array(sealed)));
}

/** Decrypts what `seal` made with the same context; undefined when it was not (tampered, moved, another master secret). */
export async function open(env: Env, use: "partner-keys" | "ticket-users", sealed: string, context: string): Promise<string | undefined> {
  try {
    const bytes = fromBase64(sealed);
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytes.slice(0, 12), additionalData: new TextEncoder().encode(context) },
      await keyFor(env, use),
      bytes.slice(12),
    );
    return new TextDecoder().decode(plain);
  } catch (e) {
    if (e instanceof AppError) throw e;
    return undefined;
  }
}

/** HMAC-SHA256 of `text` under the derived key of `use`, base64url. */
export async function mac(env: Env, use: "tickets" | "pseudonyms", text: string): Promise<string> {
  const sig = await crypto.subtle.sign("HMAC", await keyFor(env, use), new TextEncoder().encode(text));
  return toBase64Url(new Uint8Array(sig));
}

/** Whether `signature` is the HMAC of `text` (compared in constant time by the platform). */
export async function macMatches(env: Env, use: "tickets", text: string, signature: string): Promise<boolean> {
  let sig: Uint8Array;
  try {
    sig = fromBase64(signature.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    return false;
  }
  return crypto.subtle.verify("HMAC", await keyFor(env, use), sig, new TextEncoder().encode(text));
}

/** The id a partner knows a user by: a keyed hash of partner and user, so partners cannot link users between them. */
export function pseudonym(env: Env, partnerId: string, userId: string): Promise<string> {
  return mac(env, "pseudonyms", `${partnerId}\n${userId}`);
}

export const nonce = () => randomId(12);

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

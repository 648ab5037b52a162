/**
 * A user's profile: attribute changes checked against the bundle's declarations, and the attributes as the engine
 * reads them (stored in the user's account, merged with the token's claims).
 */
import { userAccount } from "../../durable-objects/support/stubs";
import type { CompiledConfig } from "../config/compiled";
import { own } from "../config/compiled";
import type { User } from "../engine/run";
import type { Env } from "../env";
import { AppError, jsonPointer, type FieldIssue } from "../errors";
import { type AttributeValue, valueProblem } from "./profile-definition";

/**
 * The changes a request asks for, each declared and of its type (null: remove it); INVALID_ATTRIBUTES naming every
 * problem by its pointer otherwise, before anything is written.
 */
export function checkedChanges(config: CompiledConfig, attributes: Record<string, unknown>): Record<string, AttributeValue | null> {
  const issues: FieldIssue[] = [];
  const declared = Object.keys(config.profile);
  for (const [name, value] of Object.entries(attributes)) {
    const pointer = jsonPointer(["attributes", name]);
    const def = own(config.profile, name);
    if (!def) {
      issues.push({ pointer, message: `unknown attribute '${name}'; declared: ${declared.join(", ") || "none"}` });
      continue;
    }
    const problem = value === null ? undefined : valueProblem(def, value);
    if (problem) issues.push({ pointer, message: problem });
  }
  if (issues.length > 0) throw new AppError("INVALID_ATTRIBUTES", `${issues[0]!.pointer}: ${issues[0]!.message}`, {}, issues);
  return attributes as Record<string, AttributeValue | null>;
}

/**
 * The user's declared attributes: the stored value of each, else the token's claim of that name when it fits the
 * declared type; an attribute with neither is absent. The stored profile wins because it is the system of record:
 * business systems write it as facts change, while a token's claims are a snapshot from sign-in that can be up to a
 * token's lifetime old. A stored value that no longer fits its declaration (the bundle changed) is passed over.
 */
export async function profileAttributes(env: Env, config: CompiledConfig, user: User): Promise<Record<string, AttributeValue>> {
  const stored = await userAccount(env, user.id).profile();
  const out: Record<string, AttributeValue> = {};
  for (const [name, def] of Object.entries(config.profile)) {
    const candidates = [own(stored, name)?.value, user.claims && own(user.claims, name)];
    const value = candidates.find((v) => v !== undefined && v !== null && valueProblem(def, v) === undefined);
    if (value !== undefined) out[name] = value as AttributeValue;
  }
  return out;
}

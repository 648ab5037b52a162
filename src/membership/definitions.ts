/**
 * Membership definitions (identity types, SKUs, materials, benefits) edited through the admin API. An edit changes
 * the active version's membership file and activates the result as a new version, exactly as `tasks:push` would: the
 * whole bundle is compiled first, versions, history, diff and rollback keep working, every isolate picks it up as it
 * picks up a push, and an edited material gets a new version (its content hash) while what was granted keeps its own.
 */
import { Document, isMap, isScalar, parseDocument, type Node } from "yaml";
import type { ConfigFile, ConfigIssue } from "../config/compile";
import type { Env } from "../env";
import { type DefinitionIssue, jsonPointer } from "../errors";
import { canonicalJson } from "../sharding";
import { isMembershipFile } from "./program";

/** What the admin API edits, by the name in its path, and where each lives in the membership file. */
export const DEFINITION_KINDS = {
  "identity-types": { at: ["membership", "identityTypes"], noun: "identity type" },
  skus: { at: ["membership", "skus"], noun: "SKU" },
  materials: { at: ["materials"], noun: "material" },
  benefits: { at: ["benefits"], noun: "benefit" },
} as const;
export type DefinitionKind = keyof typeof DEFINITION_KINDS;

/** Where a bundle without a membership file gets one. */
export const MEMBERSHIP_FILE = "task-configs/membership.yaml";

/** A bundle with one definition set or removed. */
export interface DefinitionEdit {
  files: ConfigFile[];
  /** The membership file's name. */
  file: string;
  /** Whether the definition was there before. */
  existed: boolean;
}

function membershipDocument(files: ConfigFile[]): { file: string; doc: Document } | undefined {
  for (const f of files) {
    const doc = parseDocument(f.source, { uniqueKeys: true });
    const fields = doc.errors.length === 0 ? (doc.toJS() as unknown) : undefined;
    if (fields !== null && typeof fields === "object" && !Array.isArray(fields) && isMembershipFile(fields as Record<string, unknown>))
      return { file: f.name, doc };
  }
  return undefined;
}

/**
 * The bundle with `kind` `id` set to `value` (undefined: removed) in its membership file, which is made when the
 * bundle has none. The rest of the file keeps its comments and order, so `tasks:diff` shows the edit.
 */
export function editDefinition(files: ConfigFile[], kind: DefinitionKind, id: string, value: unknown): DefinitionEdit {
  const found = membershipDocument(files) ?? {
    file: MEMBERSHIP_FILE,
    doc: parseDocument("membership:\n  identityTypes: {}\n  skus: {}\n"),
  };
  const path = [...DEFINITION_KINDS[kind].at, id];
  const existed = found.doc.hasIn(path);
  // Already so: the files stay as they are, and so does the version.
  if (existed && value !== undefined && canonicalJson(valueAt(found.doc, path)) === canonicalJson(value)) return { files, file: found.file, existed };
  const before = files.find((f) => f.name === found.file)?.source;
  const lines = before === undefined ? undefined : splice(before, found.doc, path, value);
  if (value === undefined) found.doc.deleteIn(path);
  else found.doc.setIn(path, found.doc.createNode(value));
  // The spliced text when it reads as the edited document does (a check, not a hope); else the whole file rewritten.
  const check = lines === undefined ? undefined : parseDocument(lines, { uniqueKeys: true });
  const same = check !== undefined && check.errors.length === 0 && canonicalJson(check.toJS()) === canonicalJson(found.doc.toJS());
  // lineWidth 0: long strings stay on their line as written, never folded.
  const source = same ? lines! : found.doc.toString({ lineWidth: 0 });
  const edited = { name: found.file, source };
  const had = files.some((f) => f.name === found.file);
  return { files: had ? files.map((f) => (f.name === found.file ? edited : f)) : [...files, edited], file: found.file, existed };
}

/**
 * The file's text with only the entry's lines changed (replaced, added after the last entry, or removed with the
 * comment lines just above it), so a diff shows the edit alone; undefined when its map is not a block map.
 */
function splice(source: string, doc: Document, path: string[], value: unknown): string | undefined {
  const section = doc.getIn(path.slice(0, -1), true);
  if (!isMap(section) || section.flow) return undefined;
  const id = path.at(-1)!;
  const startOf = (n: unknown) => (n as Node | null)?.range?.[0];
  // Where a node's text ends: a block collection's range runs on over the line break after it.
  const endOf = (n: unknown) => {
    let end = (n as Node | null)?.range?.[1];
    while (end !== undefined && end > 0 && /\s/.test(source[end - 1]!)) end--;
    return end;
  };
  const lineStart = (at: number) => source.lastIndexOf("\n", at - 1) + 1;
  const nextLine = (at: number) => (source.indexOf("\n", at) === -1 ? source.length : source.indexOf("\n", at) + 1);
  const render = (indent: number) =>
    new Document({ [id]: value })
      .toString({ lineWidth: 0 })
      .trimEnd()
      .replaceAll("\n", `\n${" ".repeat(indent)}`);
  const pair = section.items.find((p) => isScalar(p.key) && String(p.key.value) === id);
  if (pair) {
    const start = startOf(pair.key);
    const end = endOf(pair.value) ?? endOf(pair.key);
    if (start === undefined || end === undefined) return undefined;
    if (value !== undefined) return source.slice(0, start) + render(start - lineStart(start)) + source.slice(end);
    let from = lineStart(start);
    const indent = source.slice(from, start);
    while (from > 0 && source.slice(lineStart(from - 1), from - 1).startsWith(`${indent}#`)) from = lineStart(from - 1);
    return source.slice(0, from) + source.slice(nextLine(end));
  }
  const last = section.items.at(-1);
  const start = startOf(last?.key);
  const end = endOf(last?.value) ?? endOf(last?.key);
  if (value === undefined || start === undefined || end === undefined) return undefined;
  const indent = start - lineStart(start);
  const at = nextLine(end);
  const newline = at === source.length && !source.endsWith("\n") ? "\n" : "";
  return `${source.slice(0, at)}${newline}${" ".repeat(indent)}${render(indent)}\n${source.slice(at)}`;
}

function valueAt(doc: Document, path: string[]): unknown {
  return path.reduce<unknown>((o, k) => (o !== null && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), doc.toJS());
}

/**
 * A compile issue as the admin API answers it: where in the edited definition's body it lies, when it does (issues
 * elsewhere, such as a task naming a removed SKU, keep only their file and path).
 */
export function definitionIssue(issue: ConfigIssue, file: string, kind: DefinitionKind, id: string): DefinitionIssue {
  const prefix = [...DEFINITION_KINDS[kind].at, id].join(".");
  const inBody = issue.file === file && (issue.path === prefix || issue.path.startsWith(`${prefix}.`) || issue.path.startsWith(`${prefix}[`));
  const rest = inBody
    ? issue.path
        .slice(prefix.length)
        .replace(/\[(\d+)\]/g, ".$1")
        .split(".")
        .filter(Boolean)
    : undefined;
  return { file: issue.file, path: issue.path, reason: issue.reason, ...(rest && { pointer: jsonPointer(rest) }) };
}

/**
 * Who keeps a definition from being removed beyond the config (whose references the compile finds): a SKU or an
 * identity type granted to a user (its segments are copied to D1 from the users' accounts), a benefit a partner
 * supplies. Empty when nothing does.
 */
export async function holdersOutsideConfig(env: Env, kind: DefinitionKind, id: string): Promise<DefinitionIssue[]> {
  if (kind === "skus" || kind === "identity-types") {
    const column = kind === "skus" ? "sku" : "identity_type";
    const row = await env.DB.prepare(`SELECT id, user_id FROM identity_segments WHERE ${column} = ? LIMIT 1`)
      .bind(id)
      .first<{ id: string; user_id: string }>();
    if (!row) return [];
    return [
      {
        file: "identity_segments",
        path: row.id,
        reason: `granted to users (segment ${row.id} of user ${row.user_id}): a granted ${DEFINITION_KINDS[kind].noun} stays defined`,
      },
    ];
  }
  if (kind === "benefits") {
    const { results } = await env.DB.prepare("SELECT partner_id FROM partner_benefits WHERE benefit_id = ?").bind(id).all<{ partner_id: string }>();
    return results.map((r) => ({
      file: "partners",
      path: r.partner_id,
      reason: `partner '${r.partner_id}' supplies it: take it off the partner's benefits first (PATCH /v1/admin/partners/${r.partner_id})`,
    }));
  }
  return [];
}

/** How the note of a version made by the admin API begins: `tasks:push` will not replace one unless forced. */
export const ADMIN_NOTE_PREFIX = "admin API: ";

/** The version note of an edit: what changed and who changed it. */
export function editNote(method: "PUT" | "DELETE", kind: DefinitionKind, id: string, actor: string): string {
  return `${ADMIN_NOTE_PREFIX}${method} ${kind}/${id} by ${actor}`;
}

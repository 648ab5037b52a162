/**
 * What a service key may do: a fixed list of scopes, each named `<resource>:<action>`. A feature that adds a service
 * route adds its scope here (one line) and names it in `requireService(scope)`.
 */
export const SERVICE_SCOPES = {
  "events:write": "send business events (POST /v1/events)",
  "events:read": "read an event's outcome",
  "events:cancel": "cancel an event and take back what it granted",
  "users:write": "set users' profile attributes (POST /v1/users/{userId}/attributes)",
  "points:adjust": "adjust users' points",
  "membership:write": "change users' memberships",
  "benefits:write": "mark users' delivered benefit entitlements used (POST /v1/benefits/entitlements/{id}/use)",
  "discounts:read": "evaluate the discounts users' identities entitle (POST /v1/discounts/evaluate)",
} as const;

export type ServiceScope = keyof typeof SERVICE_SCOPES;

export const SCOPE_NAMES = Object.keys(SERVICE_SCOPES) as [ServiceScope, ...ServiceScope[]];

export function isServiceScope(s: string): s is ServiceScope {
  return Object.hasOwn(SERVICE_SCOPES, s);
}

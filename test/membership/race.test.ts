/**
 * The grant decides in the user's one writer: 20 concurrent purchases of 20 mutually conflicting SKUs by one user
 * give exactly one segment, however they interleave. A bundle of its own (one membership program per bundle).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, serviceKey, unique } from "../helpers";

const TYPES = Array.from({ length: 20 }, (_, i) => `type${i}`);
const program = `
membership:
  identityTypes:
${TYPES.map((t, i) => `    ${t}: { rank: ${i} }`).join("\n")}
  skus:
${TYPES.map((t) => `    ${t}-month: { identityType: ${t}, duration: P1M, conflicts: [${TYPES.filter((o) => o !== t).join(", ")}] }`).join("\n")}
`;

let key = "";
beforeAll(async () => {
  await pushConfigs({ "test/exclusive-membership.yaml": program }, false);
  key = await serviceKey(["membership:write"]);
});

describe("concurrent conflicting purchases", () => {
  it("of 20 at once, exactly one is granted and 19 are refused IDENTITY_CONFLICT", async () => {
    const user = `exclusive-${unique()}`;
    const answers = await Promise.all(
      TYPES.map((t) =>
        call("/v1/membership/grants", {
          headers: { authorization: `Bearer ${key}` },
          body: { userId: user, sku: `${t}-month`, externalRef: `order-${t}-${unique()}` },
        }),
      ),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 409 && a.json.error.code === "IDENTITY_CONFLICT")).toHaveLength(19);
    const timeline = await call("/v1/me/identities", { method: "GET", user });
    expect(timeline.json.segments).toHaveLength(1);
    expect(timeline.json.primary.identityType).toBe(answers.find((a) => a.status === 201)!.json.segment.identityType);
  });
});

/**
 * Membership definitions through the admin API: each edit of an identity type, SKU, material or benefit is a new
 * config version made from the active one, compiled whole first, guarded by If-Match, noted with its operator, and
 * seen by the grant and benefit routes at once. The starting point is the shipped task-configs/membership.yaml.
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, rows, serviceKey, unique } from "../helpers";

const operator = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${env.ADMIN_TOKEN}`, ...extra });
const read = () => call("/v1/admin/membership", { method: "GET", headers: operator() });
const put = (kind: string, id: string, body: unknown, headers: Record<string, string> = {}) =>
  call(`/v1/admin/membership/${kind}/${id}`, { method: "PUT", body, headers: operator(headers) });
const remove = (kind: string, id: string, headers: Record<string, string> = {}) =>
  call(`/v1/admin/membership/${kind}/${id}`, { method: "DELETE", headers: operator(headers) });
const activations = () => rows<{ hash: string; note: string }>("SELECT hash, note FROM config_activations ORDER BY id DESC");

let shipped = "";
/** Activations before the test's edits: each test starts from the shipped version, freshly activated. */
let activated = 0;
beforeEach(async () => {
  shipped = await pushConfigs();
  activated = (await activations()).length;
});
/** The activations the test's edits made, newest first. */
const edits = async () => (await activations()).slice(0, -activated || undefined);

describe("reading the definitions", () => {
  it("answers the active version's program and catalog, compiled, with the version as ETag", async () => {
    const r = await read();
    expect(r.status).toBe(200);
    expect(r.headers.get("etag")).toBe(`"${shipped}"`);
    expect(r.json.version).toBe(shipped);
    expect(r.json.program).toEqual({ timezone: "Asia/Shanghai", reminderDays: 7, preconditionLost: "revoke" });
    expect(r.json.identityTypes).toContainEqual({ id: "gold", name: "Gold", rank: 2 });
    expect(r.json.skus).toContainEqual(
      expect.objectContaining({ id: "gold-month", duration: "P1M", until: null, conflicts: ["student"], requires: null, channels: null }),
    );
    expect(r.json.materials.find((m: { id: string }) => m.id === "member-hotel-discount")).toMatchObject({
      type: "discount",
      version: expect.stringMatching(/^m[0-9a-f]{8}$/),
    });
    expect(r.json.benefits.map((b: { id: string }) => b.id)).toEqual(["hotel-coupon", "member-hotel-rate", "platinum-hotel-rate", "videoclub-vip"]);
  });
});

describe("a SKU made through the API", () => {
  it("is a new version noted with its operator, and the order system grants it at once", async () => {
    const etag = (await read()).headers.get("etag")!;
    const made = await put(
      "skus",
      "gold-2y",
      { name: "Two years of gold", identityType: "gold", duration: "P2Y", conflicts: ["student"] },
      { "if-match": etag, "x-fanfare-actor": "alice" },
    );
    expect(made.status).toBe(201);
    expect(made.json).toMatchObject({ previousVersion: shipped, changed: true, definition: { id: "gold-2y", duration: "P2Y", stack: "extend" } });
    expect(made.json.version).not.toBe(shipped);
    expect(made.headers.get("etag")).toBe(`"${made.json.version}"`);
    const [latest, before] = await activations();
    expect(latest).toEqual({ hash: made.json.version, note: "admin API: PUT skus/gold-2y by operator (alice)" });
    expect(before!.hash).toBe(shipped);
    // The stored file is the shipped one with the SKU's lines added and nothing else changed, comments included.
    const [stored] = await rows<{ bundle: string }>("SELECT bundle FROM config_versions WHERE hash = ?", made.json.version);
    const file = (JSON.parse(stored!.bundle).files as { name: string; source: string }[]).find((f) => f.name === "task-configs/membership.yaml")!;
    const added = /\n {4}gold-2y:\n {6}name: Two years of gold\n {6}identityType: gold\n {6}duration: P2Y\n {6}conflicts:\n {8}- student\n/;
    expect(file.source).toMatch(added);
    const shippedFile = env.TEST_TASK_CONFIGS.find((f) => f.name === "task-configs/membership.yaml")!.source;
    expect(file.source.replace(added, "\n")).toBe(shippedFile);

    const user = `u-${unique()}`;
    const key = await serviceKey(["membership:write"]);
    const granted = await call("/v1/membership/grants", {
      body: { userId: user, sku: "gold-2y", externalRef: `order-${unique()}` },
      headers: { authorization: `Bearer ${key}` },
      now: "2027-03-01T12:00:00+08:00",
    });
    expect(granted.status).toBe(201);
    expect(granted.json.segment).toMatchObject({
      sku: "gold-2y",
      identityType: "gold",
      start: "2027-03-01T04:00:00.000Z",
      end: "2029-03-01T04:00:00.000Z",
    });

    // Granted, it cannot be removed (once the segment's copy reached D1), and the refusal makes no version.
    await eventually(async () => (await rows("SELECT 1 FROM identity_segments WHERE sku = 'gold-2y'")).length > 0);
    const refused = await remove("skus", "gold-2y");
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe("DEFINITION_IN_USE");
    expect(refused.json.error.details.issues[0]).toMatchObject({ file: "identity_segments", reason: expect.stringContaining(`user ${user}`) });
    expect((await activations())[0]!.hash).toBe(made.json.version);
  });

  it("answers 200 with no new version when the definition is already so", async () => {
    const same = await put("identity-types", "gold", { name: "Gold", rank: 2 });
    expect(same.status).toBe(200);
    expect(same.json).toMatchObject({ version: shipped, previousVersion: shipped, changed: false, definition: { id: "gold", rank: 2 } });
    expect(await edits()).toEqual([]);
  });
});

describe("an edited material", () => {
  it("gets a new version: answers given before keep the old one, answers after carry the new one", async () => {
    const user = `u-${unique()}`;
    const grantKey = await serviceKey(["membership:write"]);
    const discountKey = await serviceKey(["discounts:read"]);
    const g = await call("/v1/membership/grants", {
      body: { userId: user, sku: "silver-month", externalRef: `order-${unique()}` },
      headers: { authorization: `Bearer ${grantKey}` },
    });
    expect(g.status).toBe(201);
    const items = [{ itemId: "night", category: "hotel", unitPrice: 100_000, quantity: 1 }];
    const evaluate = () => call("/v1/discounts/evaluate", { body: { userId: user, items }, headers: { authorization: `Bearer ${discountKey}` } });
    const before = await evaluate();
    expect(before.json.items[0]).toMatchObject({ off: 5_000, applied: { material: "member-hotel-discount" } });
    const oldVersion = before.json.items[0].applied.version;

    const edited = await put("materials", "member-hotel-discount", {
      name: "Members' hotel rate",
      type: "discount",
      supplier: "Fanfare Travel",
      faceValue: 0,
      issuance: "onIdentityGrant",
      discount: { percentOff: 8, categories: ["hotel"], maxOffPerItem: 10000 },
    });
    expect(edited.status).toBe(200);
    expect(edited.json.definition).toMatchObject({ id: "member-hotel-discount", discount: { percentOff: 8 } });
    expect(edited.json.definition.version).toMatch(/^m[0-9a-f]{8}$/);
    expect(edited.json.definition.version).not.toBe(oldVersion);

    const after = await evaluate();
    expect(after.json.items[0]).toMatchObject({
      off: 8_000,
      applied: { material: "member-hotel-discount", version: edited.json.definition.version },
    });
    expect(before.json.items[0].applied.version).toBe(oldVersion);
    // The benefit that offers it names the new version too; the other materials kept theirs.
    const listed = await read();
    expect(listed.json.benefits.find((b: { id: string }) => b.id === "member-hotel-rate").material.version).toBe(edited.json.definition.version);
  });
});

describe("refused edits change nothing", () => {
  it("answers a definition that does not compile with 422 and every issue's path, in the body and in the file", async () => {
    const r = await put("skus", "broken", { identityType: "bronze", duration: "1 month", colour: "red" });
    expect(r.status).toBe(422);
    expect(r.json.error.code).toBe("INVALID_DEFINITION");
    const issues = r.json.error.details.issues as { file: string; path: string; pointer?: string; reason: string }[];
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ file: "task-configs/membership.yaml", path: "membership.skus.broken.colour", pointer: "/colour" }),
        expect.objectContaining({ path: "membership.skus.broken.duration", pointer: "/duration" }),
      ]),
    );
    const unknownType = await put("skus", "broken", { identityType: "bronze", duration: "P1M" });
    expect(unknownType.status).toBe(422);
    expect(unknownType.json.error.details.issues).toEqual([
      expect.objectContaining({
        path: "membership.skus.broken.identityType",
        pointer: "/identityType",
        reason: expect.stringContaining("unknown identity type 'bronze'"),
      }),
    ]);
    const notAnObject = await put("benefits", "broken", ["a list"]);
    expect(notAnObject.status).toBe(422);
    expect(notAnObject.json.error.details.issues[0]).toMatchObject({ path: "benefits.broken", pointer: "" });
    expect(await edits()).toEqual([]);
  });

  it("refuses a stale If-Match with 412 VERSION_MISMATCH, after another edit landed", async () => {
    const etag = (await read()).headers.get("etag")!;
    const first = await put("identity-types", "diamond", { name: "Diamond", rank: 5 }, { "if-match": etag });
    expect(first.status).toBe(201);
    const stale = await put("identity-types", "diamond", { name: "Diamond", rank: 9 }, { "if-match": etag });
    expect(stale.status).toBe(412);
    expect(stale.json.error.code).toBe("VERSION_MISMATCH");
    expect((await activations())[0]!.hash).toBe(first.json.version);
    expect((await read()).json.identityTypes).toContainEqual({ id: "diamond", name: "Diamond", rank: 5 });
  });

  it("lets exactly one of two concurrent edits from the same version land", async () => {
    const etag = (await read()).headers.get("etag")!;
    const results = await Promise.all(["ruby", "emerald"].map((id, i) => put("identity-types", id, { rank: 10 + i }, { "if-match": etag })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 412]);
    expect(await edits()).toHaveLength(1);
  });
});

describe("a bundle without a membership program", () => {
  it("gets its membership file from the first identity type defined", async () => {
    const points = env.TEST_TASK_CONFIGS.find((f) => f.name === "task-configs/points.yaml")!;
    const bare = await pushConfigs({ [points.name]: points.source }, false);
    const empty = await read();
    expect(empty.json).toMatchObject({ version: bare, program: null, identityTypes: [], skus: [], materials: [], benefits: [] });
    const early = await put("skus", "basic-month", { identityType: "basic", duration: "P1M" });
    expect(early.status).toBe(422);
    expect(early.json.error.details.issues).toContainEqual(expect.objectContaining({ path: "membership.skus.basic-month.identityType" }));

    expect((await put("identity-types", "basic", { rank: 1 })).status).toBe(201);
    const sku = await put("skus", "basic-month", { identityType: "basic", duration: "P1M" });
    expect(sku.status).toBe(201);
    const [stored] = await rows<{ bundle: string }>("SELECT bundle FROM config_versions WHERE hash = ?", sku.json.version);
    expect((JSON.parse(stored!.bundle).files as { name: string }[]).map((f) => f.name).sort()).toEqual([
      "task-configs/membership.yaml",
      "task-configs/points.yaml",
    ]);
    const listed = await read();
    expect(listed.json.program).toEqual({ timezone: "UTC", reminderDays: null, preconditionLost: "keep" });
    expect(listed.json.skus).toEqual([expect.objectContaining({ id: "basic-month", identityType: "basic", duration: "P1M" })]);
  });
});

describe("removing definitions", () => {
  it("removes a benefit and then its material, each a new version", async () => {
    const benefit = await remove("benefits", "platinum-hotel-rate", { "x-fanfare-actor": "bob" });
    expect(benefit.status).toBe(200);
    expect(benefit.json).toMatchObject({ deleted: "platinum-hotel-rate", previousVersion: shipped });
    const material = await remove("materials", "platinum-hotel-discount", { "if-match": `"${benefit.json.version}"` });
    expect(material.status).toBe(200);
    const listed = await read();
    expect(listed.json.benefits.map((b: { id: string }) => b.id)).not.toContain("platinum-hotel-rate");
    expect(listed.json.materials.map((m: { id: string }) => m.id)).not.toContain("platinum-hotel-discount");
    expect((await activations()).slice(0, 2).map((a) => a.note)).toEqual([
      "admin API: DELETE materials/platinum-hotel-discount by operator",
      "admin API: DELETE benefits/platinum-hotel-rate by operator (bob)",
    ]);
    expect((await remove("benefits", "platinum-hotel-rate")).status).toBe(404);
  });

  it("refuses to remove what others name, saying who names it", async () => {
    const material = await remove("materials", "hotel-coupon-50");
    expect(material.status).toBe(409);
    expect(material.json.error.code).toBe("DEFINITION_IN_USE");
    expect(material.json.error.details.issues).toContainEqual(expect.objectContaining({ path: "benefits.hotel-coupon.material" }));
    const type = await remove("identity-types", "student");
    expect(type.status).toBe(409);
    const named = (type.json.error.details.issues as { path: string }[]).map((i) => i.path);
    expect(named).toEqual(expect.arrayContaining(["membership.skus.student-year.identityType", "membership.skus.gold-month.conflicts[0]"]));
    // A partner that supplies a benefit names it from outside the config.
    const partner = `vc-${unique()}`;
    const defined = await call("/v1/admin/partners", {
      headers: operator(),
      body: { id: partner, name: "VideoClub", url: "https://videoclub.example/deliveries", benefits: ["videoclub-vip"] },
    });
    expect(defined.status).toBe(201);
    const supplied = await remove("benefits", "videoclub-vip");
    expect(supplied.status).toBe(409);
    expect(supplied.json.error.details.issues).toEqual([expect.objectContaining({ file: "partners", path: partner })]);
    expect(await edits()).toEqual([]);
  });
});

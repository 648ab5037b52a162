/**
 * The task-config CLI for real: every command against a fresh local D1 (a temp `--persist-to` directory), checking
 * what each prints and that a refused push writes nothing. `npm run test:tasks-cli`; about a minute, most of it
 * wrangler starting once per command.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { d1Batch, wrangler } from "./wrangler";
import { bundleHash } from "../src/config/compile";
import { activationSql } from "../src/config/store";
import { editDefinition, editNote } from "../src/membership/definitions";

const root = join(import.meta.dirname, "..");
const state = mkdtempSync(join(tmpdir(), "fanfare-d1-"));
const changed = mkdtempSync(join(tmpdir(), "fanfare-configs-"));
const pulled = mkdtempSync(join(tmpdir(), "fanfare-pulled-"));
const target = ["--local", "--persist-to", state];

/** Runs one CLI command; its exit code and what it printed (stdout and stderr). */
function tasks(...args: string[]) {
  const started = Date.now();
  const res = spawnSync(process.execPath, ["--import", "tsx", join(root, "scripts", "tasks.ts"), ...args, "--persist-to", state], {
    encoding: "utf8",
    cwd: root,
  });
  const out = `${res.stdout}${res.stderr}`;
  console.error(`tasks ${args.join(" ")}: exit ${res.status} in ${((Date.now() - started) / 1000).toFixed(1)} s\n${out.replace(/^/gm, "  | ")}`);
  return { status: res.status, out };
}

try {
  wrangler(["d1", "migrations", "apply", "DB", ...target], { capture: true });
  cpSync(join(root, "task-configs"), changed, { recursive: true });
  const file = join(changed, "double11.yaml");
  writeFileSync(file, readFileSync(file, "utf8").replace("quantity: 11, value: 599900", "quantity: 12, value: 599900"));

  assert.match(tasks("check").out, /no version pushed to local D1 yet: ok/);
  const first = tasks("push", "--note", "first");
  assert.equal(first.status, 0);
  assert.match(first.out, /pushed version (\w+) \(\d+ file\(s\)\) to local D1, was none/);
  assert.match(tasks("push").out, /is already active on local D1; nothing to push/);
  assert.match(tasks("status").out, /local files: the same version/);

  const diff = tasks("diff", "--dir", changed);
  assert.match(diff.out, /^-.*quantity: 11, value: 599900/m);
  assert.match(diff.out, /^\+.*quantity: 12, value: 599900/m);
  assert.match(tasks("status", "--dir", changed).out, /changed {3}task-configs\/double11\.yaml/);
  assert.equal(tasks("push", "--dir", changed, "--note", "second").status, 0);
  assert.match(tasks("versions").out, /^\* \w+ .* second\n {2}\w+ .* first$/m);
  assert.match(tasks("rollback").out, /is active again on local D1/);
  assert.match(tasks("status").out, /local files: the same version/);

  // A sale id the admin API created is permanent: check and push refuse it, and the push writes nothing.
  d1Batch(target, ["INSERT INTO flash_sales (id, definition, created_at) VALUES ('d11-phone', '{}', 0)"]);
  const refused = tasks("push", "--dir", changed);
  assert.equal(refused.status, 1);
  assert.match(refused.out, /error: sales\.d11-phone: sale id 'd11-phone' was created through the admin API/);
  assert.equal(tasks("check").status, 1);
  assert.equal(d1Batch(target, ["SELECT count(*) AS n FROM config_activations"])[0]![0]!.n as number, 3);

  // An admin API edit (the worker's own edit and SQL: src/membership/definitions.ts) is a version like any other:
  // listed, diffed, never silently undone by a push of files that lack it, and pulled into files. (The sale id taken
  // above is freed first, so that a refused push here is refused for the admin edit alone.)
  d1Batch(target, ["DELETE FROM flash_sales WHERE id = 'd11-phone'"]);
  const [active] = d1Batch(target, [
    "SELECT a.hash, v.bundle FROM config_activations a JOIN config_versions v ON v.hash = a.hash ORDER BY a.id DESC LIMIT 1",
  ])[0]!;
  const edit = editDefinition(JSON.parse(active!.bundle as string).files, "skus", "gold-2y", { identityType: "gold", duration: "P2Y" });
  const edited = await bundleHash(edit.files);
  d1Batch(target, activationSql(edited, { files: edit.files }, Date.now(), editNote("PUT", "skus", "gold-2y", "operator (smoke)")));
  assert.match(tasks("versions").out, new RegExp(`^\\* ${edited} .* admin API: PUT skus/gold-2y by operator \\(smoke\\)$`, "m"));
  assert.match(tasks("status").out, /changed {3}task-configs\/membership\.yaml/);
  assert.match(tasks("diff").out, /^-\s+gold-2y:$/m);
  const over = tasks("push", "--dir", changed);
  assert.equal(over.status, 1);
  assert.match(over.out, /was made by the admin API \(admin API: PUT skus\/gold-2y/);
  assert.equal(d1Batch(target, ["SELECT count(*) AS n FROM config_activations"])[0]![0]!.n as number, 4);
  cpSync(join(root, "task-configs"), pulled, { recursive: true });
  assert.equal(tasks("pull", "--dir", pulled).status, 0);
  assert.match(readFileSync(join(pulled, "membership.yaml"), "utf8"), /gold-2y:\n\s+identityType: gold\n\s+duration: P2Y/);
  assert.match(tasks("status", "--dir", pulled).out, /local files: the same version/);
  assert.equal(tasks("push", "--dir", changed, "--force").status, 0);

  // A bySegment node naming a segment the bundle does not declare: check names it, with file, line and the nearest.
  writeFileSync(
    join(changed, "rights.yaml"),
    [
      "id: rights",
      "name: Rights by segment",
      'timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }',
      "tasks:",
      "  claim:",
      "    validator: [login]",
      "    reward:",
      "      bySegment:",
      "        - { segment: vipLst, rights: [ { reward: { redPacket: { amount: 1 } } } ] }",
      "",
    ].join("\n"),
  );
  const unknownSegment = tasks("check", "--offline", "--dir", changed);
  assert.equal(unknownSegment.status, 1);
  assert.match(
    unknownSegment.out,
    /rights\.yaml:9:\d+: error: tasks\.claim\.reward\.bySegment\[0\]\.segment: unknown segment 'vipLst'; did you mean 'vipList'\?/,
  );
  console.error("tasks CLI: all good");
} finally {
  rmSync(state, { recursive: true, force: true });
  rmSync(changed, { recursive: true, force: true });
  rmSync(pulled, { recursive: true, force: true });
}

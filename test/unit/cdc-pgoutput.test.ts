// pgoutput decoding keeps values as the exact text sent, and the statement planner turns
// change runs into ordered SQL without losing unchanged TOAST values.
import assert from "node:assert/strict";
import { decodePgoutput, UNCHANGED_TOAST, type ColumnValue } from "../../provider/cdc/pgoutput";
import type { ApplyRelation, Change } from "../../provider/cdc/changes";
import { planStatements } from "../../provider/cdc/plan";

// A tiny pgoutput encoder, the mirror of the server's logicalrep_write_* functions.
class Writer {
  private parts: Buffer[] = [];
  char(c: string): this {
    this.parts.push(Buffer.from(c, "latin1"));
    return this;
  }
  int8(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  int64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt.asUintN(64, v));
    this.parts.push(b);
    return this;
  }
  cstring(s: string): this {
    this.parts.push(Buffer.from(s, "utf8"), Buffer.from([0]));
    return this;
  }
  tuple(values: ColumnValue[]): this {
    this.int16(values.length);
    for (const v of values) {
      if (v === null) this.char("n");
      else if (v === UNCHANGED_TOAST) this.char("u");
      else {
        const bytes = Buffer.from(v, "utf8");
        this.char("t").int32(bytes.length);
        this.parts.push(bytes);
      }
    }
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

describe("pgoutput decoding", () => {
  it("reads begin and commit positions and times", () => {
    // 2024-04-26T22:14:56.123456Z in microseconds since 2000-01-01.
    const micros = BigInt(Date.UTC(2024, 3, 26, 22, 14, 56, 123) - 946_684_800_000) * 1000n + 456n;
    const begin = decodePgoutput(
      new Writer().char("B").int64(0x1_6b374d848n).int64(micros).int32(4242).done(),
    );
    assert.deepEqual(begin, {
      tag: "begin",
      commitLsn: 0x1_6b374d848n,
      commitTime: Date.UTC(2024, 3, 26, 22, 14, 56, 123),
      xid: 4242,
    });
    const commit = decodePgoutput(
      new Writer().char("C").int8(0).int64(0x10n).int64(0xffffffff_00000020n).int64(micros).done(),
    );
    assert.deepEqual(commit, {
      tag: "commit",
      commitLsn: 0x10n,
      endLsn: 0xffffffff_00000020n,
      commitTime: Date.UTC(2024, 3, 26, 22, 14, 56, 123),
    });
  });

  it("reads relations with key flags, names in any script", () => {
    const msg = decodePgoutput(
      new Writer()
        .char("R")
        .int32(16384)
        .cstring("Other Schema")
        .cstring("Wide Row ü")
        .char("d")
        .int16(2)
        .int8(1)
        .cstring("id")
        .int32(20)
        .int32(-1)
        .int8(0)
        .cstring("body")
        .int32(25)
        .int32(-1)
        .done(),
    );
    assert.deepEqual(msg, {
      tag: "relation",
      relationOid: 16384,
      schema: "Other Schema",
      name: "Wide Row ü",
      replicaIdentity: "d",
      columns: [
        { name: "id", isKey: true, typeOid: 20, typeMod: -1 },
        { name: "body", isKey: false, typeOid: 25, typeMod: -1 },
      ],
    });
  });

  it("keeps values as sent and tells unchanged TOAST from NULL", () => {
    const values: ColumnValue[] = [
      "-9223372036854775808",
      "12345678901234567890.12345678901234567890",
      '{"b": 1,   "a": [1, 2]}',
      "\\x00ff5c",
      "🐘 ünïcode",
      null,
      UNCHANGED_TOAST,
      "",
    ];
    const msg = decodePgoutput(
      new Writer().char("U").int32(7).char("K").tuple(["1", null]).char("N").tuple(values).done(),
    );
    assert.equal(msg.tag, "update");
    if (msg.tag !== "update") return;
    assert.equal(msg.oldKind, "key");
    assert.deepEqual(msg.oldTuple, ["1", null]);
    assert.deepEqual(msg.newTuple, values);
    assert.equal(msg.newTuple[6], UNCHANGED_TOAST);
    assert.equal(msg.newTuple[5], null);
  });

  it("reads deletes with a full old row and truncates with their options", () => {
    const del = decodePgoutput(new Writer().char("D").int32(9).char("O").tuple(["a", null]).done());
    assert.deepEqual(del, {
      tag: "delete",
      relationOid: 9,
      oldKind: "full",
      oldTuple: ["a", null],
    });
    const trunc = decodePgoutput(new Writer().char("T").int32(2).int8(3).int32(5).int32(6).done());
    assert.deepEqual(trunc, {
      tag: "truncate",
      relationOids: [5, 6],
      cascade: true,
      restartIdentity: true,
    });
    assert.deepEqual(decodePgoutput(new Writer().char("Y").int32(1).done()), {
      tag: "ignored",
      kind: "Y",
    });
  });
});

function relation(overrides: Partial<ApplyRelation> = {}): ApplyRelation {
  return {
    id: 1,
    schema: "app",
    name: "t",
    columns: ["id", "v", "body"],
    keyColumns: [0],
    full: false,
    target: [
      {
        typeName: "bigint",
        declaredType: "bigint",
        hasEquality: true,
        identityAlways: false,
        inUniqueIndex: true,
        arrayElement: null,
        setBased: true,
      },
      {
        typeName: "numeric",
        declaredType: "numeric",
        hasEquality: true,
        identityAlways: false,
        inUniqueIndex: false,
        arrayElement: null,
        setBased: true,
      },
      {
        typeName: "json",
        declaredType: "json",
        hasEquality: false,
        identityAlways: false,
        inUniqueIndex: false,
        arrayElement: null,
        setBased: true,
      },
    ],
    ...overrides,
  };
}

describe("statement planning", () => {
  it("groups consecutive inserts and updates of one shape into multi-row statements, in order", () => {
    const rel = relation();
    const changes: Change[] = [
      { kind: "insert", relation: rel, values: ["1", "1.10", "{}"] },
      { kind: "insert", relation: rel, values: ["2", null, "[]"] },
      { kind: "update", relation: rel, values: ["1", "2.5", UNCHANGED_TOAST] },
      { kind: "update", relation: rel, values: ["2", "3.5", UNCHANGED_TOAST] },
      // Same key again: must not share a statement with the first update of row 1.
      { kind: "update", relation: rel, values: ["1", "4.5", UNCHANGED_TOAST] },
      { kind: "delete", relation: rel, old: ["2", null, null] },
    ];
    const statements = planStatements(changes);
    assert.equal(statements.length, 4);
    assert.match(
      statements[0].text,
      /^INSERT INTO "app"."t" \("id", "v", "body"\) OVERRIDING SYSTEM VALUE VALUES \(\$1, \$2, \$3\), \(\$4, \$5, \$6\)$/,
    );
    assert.deepEqual(statements[0].values, ["1", "1.10", "{}", "2", null, "[]"]);
    // The TOASTed column is not in the SET list; VALUES columns carry casts.
    assert.equal(
      statements[1].text,
      'UPDATE ONLY "app"."t" AS t SET "v" = v.c0 FROM (VALUES ($1::numeric, $2::bigint), ($3::numeric, $4::bigint)) AS v(c0, c1) WHERE t."id" = v.c1',
    );
    assert.deepEqual(statements[1].values, ["2.5", "1", "3.5", "2"]);
    assert.equal(statements[2].text, 'UPDATE ONLY "app"."t" SET "v" = $1 WHERE "id" = $2');
    assert.deepEqual(statements[2].values, ["4.5", "1"]);
    assert.equal(statements[3].text, 'DELETE FROM ONLY "app"."t" WHERE "id" = $1');
  });

  it("moves a row whose key changed, using the old key", () => {
    const rel = relation();
    const [s] = planStatements([
      { kind: "update", relation: rel, old: ["1", null, null], values: ["10", "1", "{}"] },
    ]);
    assert.equal(
      s.text,
      'UPDATE ONLY "app"."t" SET "id" = $1, "v" = $2, "body" = $3 WHERE "id" = $4',
    );
    assert.deepEqual(s.values, ["10", "1", "{}", "1"]);
  });

  it("finds REPLICA IDENTITY FULL rows by all old values, json compared as text, one row only", () => {
    const rel = relation({ full: true, keyColumns: [0, 1, 2] });
    const [u, d] = planStatements([
      {
        kind: "update",
        relation: rel,
        old: ["1", null, '{"a": 1}'],
        values: ["1", "2", '{"a": 1}'],
      },
      { kind: "delete", relation: rel, old: ["1", "2", '{"a": 1}'] },
    ]);
    assert.equal(
      u.text,
      'UPDATE ONLY "app"."t" SET "v" = $1 WHERE ctid = (SELECT ctid FROM ONLY "app"."t" WHERE ' +
        '"id" = $2::bigint AND "id"::text = ($2::bigint)::text AND "v" IS NULL AND "body"::text = ($3::json)::text LIMIT 1)',
    );
    assert.deepEqual(u.values, ["2", "1", '{"a": 1}']);
    assert.match(
      d.text,
      /^DELETE FROM ONLY "app"."t" WHERE ctid = \(SELECT ctid FROM ONLY "app"."t" WHERE "id" = \$1::bigint AND .* AND "v" = \$2::numeric AND "v"::text = \(\$2::numeric\)::text AND "body"::text = \(\$3::json\)::text LIMIT 1\)$/,
    );
  });

  it("truncates several relations with the source's options", () => {
    const a = relation();
    const b = relation({ id: 2, schema: "Other Schema", name: "Wide Row" });
    const [s] = planStatements([
      { kind: "truncate", relations: [a, b], cascade: true, restartIdentity: true },
    ]);
    assert.equal(
      s.text,
      'TRUNCATE ONLY "app"."t", "Other Schema"."Wide Row" RESTART IDENTITY CASCADE',
    );
  });

  it("applies updates touching a unique column one by one", () => {
    const rel = relation({
      target: [
        {
          typeName: "bigint",
          declaredType: "bigint",
          hasEquality: true,
          identityAlways: false,
          inUniqueIndex: true,
          arrayElement: null,
          setBased: true,
        },
        {
          typeName: "text",
          declaredType: "text",
          hasEquality: true,
          identityAlways: false,
          inUniqueIndex: true,
          arrayElement: null,
          setBased: true,
        },
        {
          typeName: "json",
          declaredType: "json",
          hasEquality: false,
          identityAlways: false,
          inUniqueIndex: false,
          arrayElement: null,
          setBased: true,
        },
      ],
    });
    const statements = planStatements([
      { kind: "update", relation: rel, values: ["1", "x", UNCHANGED_TOAST] },
      { kind: "update", relation: rel, values: ["2", "a", UNCHANGED_TOAST] },
    ]);
    assert.equal(statements.length, 2);
  });

  it("guards identity ALWAYS values and overrides the column only when one changed", () => {
    const rel = relation({
      target: [
        {
          typeName: "bigint",
          declaredType: "bigint",
          hasEquality: true,
          identityAlways: false,
          inUniqueIndex: true,
          arrayElement: null,
          setBased: true,
        },
        {
          typeName: "integer",
          declaredType: "integer",
          hasEquality: true,
          identityAlways: true,
          inUniqueIndex: false,
          arrayElement: null,
          setBased: true,
        },
        {
          typeName: "json",
          declaredType: "json",
          hasEquality: false,
          identityAlways: false,
          inUniqueIndex: false,
          arrayElement: null,
          setBased: true,
        },
      ],
    });
    const [s] = planStatements([{ kind: "update", relation: rel, values: ["1", "7", "{}"] }]);
    assert.equal(s.text, 'UPDATE ONLY "app"."t" SET "body" = $1 WHERE "id" = $2 AND "v" = $3');
    assert.deepEqual(s.values, ["{}", "1", "7"]);
    assert.deepEqual(
      s.ifNoRows?.map((f) => f.text),
      [
        'ALTER TABLE "app"."t" ALTER COLUMN "v" SET GENERATED BY DEFAULT',
        'UPDATE ONLY "app"."t" SET "body" = $1, "v" = $2 WHERE "id" = $3',
        'ALTER TABLE "app"."t" ALTER COLUMN "v" SET GENERATED ALWAYS',
      ],
    );
  });
});

describe("pgoutput values too large to hold", () => {
  it("turns a row with an oversized value into an 'oversized' message naming the column", () => {
    const insert = new Writer()
      .char("I")
      .int32(16_385)
      .char("N")
      .tuple(["1", "x".repeat(65), null])
      .done();
    assert.deepEqual(decodePgoutput(insert, 64), {
      tag: "oversized",
      relationOid: 16_385,
      column: 1,
      bytes: 65,
    });
    const update = new Writer()
      .char("U")
      .int32(16_386)
      .char("K")
      .tuple(["y".repeat(100), null])
      .char("N")
      .tuple(["1", "ok"])
      .done();
    assert.deepEqual(decodePgoutput(update, 64), {
      tag: "oversized",
      relationOid: 16_386,
      column: 0,
      bytes: 100,
    });
  });

  it("decodes a value exactly at the limit as text", () => {
    const insert = new Writer()
      .char("I")
      .int32(7)
      .char("N")
      .tuple(["z".repeat(64)])
      .done();
    assert.deepEqual(decodePgoutput(insert, 64), {
      tag: "insert",
      relationOid: 7,
      newTuple: ["z".repeat(64)],
    });
  });
});

// Which roles a database's ownership and privileges name, without servers: owners, grantors and
// grantees count; PUBLIC, owners of extension members and of serial sequences do not.
import assert from "node:assert/strict";
import { rolesNamed, type DatabasePrivileges } from "../../provider/pg/privileges";

describe("rolesNamed", () => {
  it("lists owners, grantors and grantees of objects, columns and default privileges", () => {
    const privileges: DatabasePrivileges = {
      objects: [
        {
          alterKind: "TABLE",
          grantKind: "TABLE",
          identity: "app.t",
          label: "table app.t",
          owner: "app_owner",
          acl: [
            { grantor: "app_owner", grantee: null, privilege: "SELECT", grantable: false },
            { grantor: "app_writer", grantee: "app_reader", privilege: "INSERT", grantable: false },
          ],
          extensionMember: false,
        },
        {
          alterKind: null,
          grantKind: "SEQUENCE",
          identity: "app.t_id_seq",
          label: "sequence app.t_id_seq",
          owner: "follows_table",
          acl: null,
          extensionMember: false,
        },
        {
          alterKind: "FUNCTION",
          grantKind: "FUNCTION",
          identity: "public.ext_fn()",
          label: "function public.ext_fn()",
          owner: "extension_owner",
          acl: [{ grantor: "postgres", grantee: "auditor", privilege: "EXECUTE", grantable: true }],
          extensionMember: true,
        },
      ],
      columns: [
        {
          table: "app.t",
          column: "secret",
          owner: "app_owner",
          acl: [
            {
              grantor: "app_owner",
              grantee: "column_reader",
              privilege: "SELECT",
              grantable: false,
            },
          ],
        },
      ],
      defaults: [
        {
          role: "schema_owner",
          schema: "app",
          objects: "TABLES",
          acl: [
            {
              grantor: "schema_owner",
              grantee: "future_reader",
              privilege: "SELECT",
              grantable: false,
            },
          ],
        },
      ],
    };
    assert.deepEqual([...rolesNamed(privileges)].sort(), [
      "app_owner",
      "app_reader",
      "app_writer",
      "auditor",
      "column_reader",
      "future_reader",
      "postgres",
      "schema_owner",
    ]);
  });
});

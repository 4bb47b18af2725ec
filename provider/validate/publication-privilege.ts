// Online only: can the source user create the migration's publication? CREATE PUBLICATION needs
// CREATE on the database, and FOR TABLE (what provider/cdc/publication.ts issues) ownership of
// every listed table — directly or through membership in the owning role — unless superuser.
// The advice is statements that run as written: every name quoted, and never membership in a
// role that can act as a superuser (SET ROLE would make the migration user one).
import type { Client } from "pg";
import { replicatedTableSql } from "../pg/catalog";
import { quoteIdent } from "../pg/ident";
import type { CheckResult } from "../spec/types";
import { CHECK, failed, listSome, succeeded } from "./checks";

/** Managed services' administrator roles: as good as superuser for this purpose. */
const ADMIN_ROLES = ["rds_superuser", "azure_pg_admin", "cloudsqlsuperuser"];

// The tables the publication lists (the replicated tables of pg/catalog.ts) that the current user
// may not publish, with their owners and whether each owner can act as a superuser (is one, or is
// a member of one or of a managed service's administrator role). Superusers own everything.
const PRIVILEGE_SQL = `
WITH published AS (
  SELECT n.nspname, c.relname, c.relowner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE ${replicatedTableSql()}
), missing AS (
  SELECT format('%I.%I', nspname, relname) AS qualified, relowner,
         EXISTS (SELECT 1 FROM pg_roles s
                  WHERE (s.rolsuper OR s.rolname = ANY ($1::text[]))
                    AND pg_has_role(relowner, s.oid, 'MEMBER')) AS privileged
    FROM published WHERE NOT pg_has_role(current_user, relowner, 'USAGE')
)
SELECT current_user AS "user", current_database() AS database,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       has_database_privilege(current_database(), 'CREATE') AS can_create,
       (SELECT count(*) FROM published) AS tables,
       ARRAY(SELECT format('%s (owner %s)', qualified, quote_ident(pg_get_userbyid(relowner)))
               FROM missing ORDER BY qualified) AS not_owned,
       ARRAY(SELECT DISTINCT quote_ident(pg_get_userbyid(relowner))
               FROM missing WHERE NOT privileged ORDER BY 1) AS grantable_owners,
       ARRAY(SELECT qualified FROM missing WHERE privileged ORDER BY qualified) AS privileged_tables`;

interface PrivilegeRow {
  user: string;
  database: string;
  superuser: boolean;
  can_create: boolean;
  tables: string;
  not_owned: string[];
  grantable_owners: string[];
  privileged_tables: string[];
}

/** At most this many ALTER TABLE statements are spelled out. */
const MAX_STATEMENTS = 10;

/** PublicationPrivilege on an open connection to the source database. */
export async function publicationPrivilegeCheck(client: Client): Promise<CheckResult> {
  const { rows } = await client.query<PrivilegeRow>(PRIVILEGE_SQL, [ADMIN_ROLES]);
  const r = rows[0];
  const user = quoteIdent(r.user);
  if (r.superuser) {
    return succeeded(
      CHECK.publicationPrivilege,
      `${user} is a superuser and may create the publication`,
    );
  }
  const problems: string[] = [];
  if (!r.can_create) {
    problems.push(
      `${user} may not create a publication in database ${quoteIdent(r.database)}: ` +
        `run GRANT CREATE ON DATABASE ${quoteIdent(r.database)} TO ${user};`,
    );
  }
  if (r.not_owned.length > 0) {
    const fixes: string[] = [];
    if (r.grantable_owners.length > 0) {
      fixes.push(
        `make ${user} a member of the owning role(s): ` +
          r.grantable_owners.map((o) => `GRANT ${o} TO ${user};`).join(" "),
      );
    }
    if (r.privileged_tables.length > 0) {
      const shown = r.privileged_tables.slice(0, MAX_STATEMENTS);
      const more = r.privileged_tables.length - shown.length;
      fixes.push(
        `tables owned by a superuser or administrator role (membership in it would make ${user} ` +
          `one): give them to ${user}: ` +
          shown.map((t) => `ALTER TABLE ${t} OWNER TO ${user};`).join(" ") +
          (more > 0 ? ` (and the same for ${more} more)` : ""),
      );
    }
    problems.push(
      `${user} neither owns nor is a member of the owner of ${r.not_owned.length} of ${r.tables} table(s) to publish: ` +
        `${listSome(r.not_owned)}. A publication FOR TABLE needs ownership of every table; run as a ` +
        `superuser (on RDS/Aurora the master user, on Azure the server admin): ${fixes.join("; ")}. ` +
        "Or migrate as a superuser",
    );
  }
  if (problems.length > 0) return failed(CHECK.publicationPrivilege, ...problems);
  return succeeded(
    CHECK.publicationPrivilege,
    `${user} owns (directly or through role membership) all ${r.tables} table(s) to publish and may create the publication`,
  );
}

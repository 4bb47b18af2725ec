// Online only: can the source user create the migration's publication? CREATE PUBLICATION needs
// CREATE on the database, and FOR TABLE (what provider/cdc/publication.ts issues) ownership of
// every listed table — directly or through membership in the owning role — unless superuser.
import type { Client } from "pg";
import { replicatedTableSql } from "../pg/catalog";
import type { CheckResult } from "../spec/types";
import { CHECK, failed, listSome, succeeded } from "./checks";

// The tables the publication lists (the replicated tables of pg/catalog.ts) that the current user
// may not publish, with their owners. Superusers own everything.
const PRIVILEGE_SQL = `
WITH published AS (
  SELECT n.nspname, c.relname, c.relowner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE ${replicatedTableSql()}
)
SELECT current_user AS "user",
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       has_database_privilege(current_database(), 'CREATE') AS can_create,
       (SELECT count(*) FROM published) AS tables,
       ARRAY(SELECT format('%s (owner %s)', format('%I.%I', nspname, relname),
                           quote_ident(pg_get_userbyid(relowner)))
               FROM published WHERE NOT pg_has_role(current_user, relowner, 'USAGE')
              ORDER BY nspname, relname) AS not_owned,
       ARRAY(SELECT DISTINCT quote_ident(pg_get_userbyid(relowner))
               FROM published WHERE NOT pg_has_role(current_user, relowner, 'USAGE')
              ORDER BY 1) AS owners`;

interface PrivilegeRow {
  user: string;
  superuser: boolean;
  can_create: boolean;
  tables: string;
  not_owned: string[];
  owners: string[];
}

/** PublicationPrivilege on an open connection to the source database. */
export async function publicationPrivilegeCheck(client: Client): Promise<CheckResult> {
  const { rows } = await client.query<PrivilegeRow>(PRIVILEGE_SQL);
  const r = rows[0];
  const user = `"${r.user}"`;
  if (r.superuser) {
    return succeeded(
      CHECK.publicationPrivilege,
      `${user} is a superuser and may create the publication`,
    );
  }
  const problems: string[] = [];
  if (!r.can_create) {
    problems.push(
      `${user} may not create a publication in this database: GRANT CREATE ON DATABASE to ${user}`,
    );
  }
  if (r.not_owned.length > 0) {
    const grants = listSome(
      r.owners.map((o) => `GRANT ${o} TO ${user}`),
      5,
    );
    problems.push(
      `${user} neither owns nor is a member of the owner of ${r.not_owned.length} of ${r.tables} table(s) to publish: ` +
        `${listSome(r.not_owned)}. A publication FOR TABLE needs ownership of every table: grant ownership ` +
        `(${grants}; or ALTER TABLE ... OWNER TO ${user}) or use a superuser ` +
        `(on RDS/Aurora the rds_superuser master user can run those GRANTs)`,
    );
  }
  if (problems.length > 0) return failed(CHECK.publicationPrivilege, ...problems);
  return succeeded(
    CHECK.publicationPrivilege,
    `${user} owns (directly or through role membership) all ${r.tables} table(s) to publish and may create the publication`,
  );
}

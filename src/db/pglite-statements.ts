import type { PGliteKnexDialect } from 'mikro-orm-pglite';

/**
 * Works around @harryplusplus/knex-pglite 0.x: it decides that a raw query holds several
 * statements by counting every `;`, including those inside string literals. MikroORM inlines
 * values into raw SQL, so a search for "a;b" was sent down the multi-statement path and its
 * rows came back in the wrong shape. Only semicolons outside literals, quoted identifiers,
 * dollar quotes and comments separate statements.
 */
export function countStatements(sql: string): number {
  let statements = 0;
  let pending = false;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (c === "'") {
      const backslashEscapes = i > 0 && /[eE]/.test(sql[i - 1]);
      for (i++; i < sql.length; i++) {
        if (backslashEscapes && sql[i] === '\\') i++;
        else if (sql[i] === "'" && sql[i + 1] === "'") i++;
        else if (sql[i] === "'") break;
      }
      pending = true;
    } else if (c === '"') {
      const end = sql.indexOf('"', i + 1);
      i = end < 0 ? sql.length : end;
      pending = true;
    } else if (c === '$' && /^\$([A-Za-z_]\w*)?\$/.test(sql.slice(i, i + 64))) {
      const tag = /^\$([A-Za-z_]\w*)?\$/.exec(sql.slice(i, i + 64))![0];
      const end = sql.indexOf(tag, i + tag.length);
      i = end < 0 ? sql.length : end + tag.length - 1;
      pending = true;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end;
    } else if (c === ';') {
      if (pending) statements++;
      pending = false;
    } else if (!/\s/.test(c)) {
      pending = true;
    }
  }
  return statements + (pending ? 1 : 0);
}

interface KnexQuery {
  sql: string;
  method: string;
  bindings?: unknown[];
  response?: unknown;
}

interface PGliteConnection {
  query(sql: string, bindings: unknown[]): Promise<unknown>;
  exec(sql: string): Promise<unknown>;
}

/**
 * The PGlite dialect with `countStatements` deciding which raw queries are sent down the
 * multi-statement path. A subclass of the dialect the ORM is given as its knex `client`
 * (orm.ts), so the library's own class is left as it was.
 */
export function withStatementCounting(Dialect: typeof PGliteKnexDialect): typeof PGliteKnexDialect {
  return class StatementCountingPGliteDialect extends Dialect {
    // Declared with the library's parameter types; the body needs only query and exec.
    override async _query(...[connection, obj]: Parameters<PGliteKnexDialect['_query']>): ReturnType<PGliteKnexDialect['_query']> {
      const pglite = connection as unknown as PGliteConnection;
      const query = obj as unknown as KnexQuery;
      if (!query.sql) throw new Error('The query is empty');
      query.response =
        query.method === 'raw' && countStatements(query.sql) > 1
          ? await pglite.exec(query.sql)
          : await pglite.query(query.sql, query.bindings ?? []);
      return obj;
    }
  };
}

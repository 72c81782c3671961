import pg from 'pg';

/** One short PostgreSQL connection for `work` (creating and dropping the bench's databases). */
export async function withPg(url, work) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

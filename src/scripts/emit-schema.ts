import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { printAppSchema } from '../graphql/schema';

/** `npm run schema`: regenerates schema.graphql at the project root from the code. */
async function main(): Promise<void> {
  const target = path.resolve(__dirname, '../../../schema.graphql');
  await writeFile(target, await printAppSchema());
  console.log(`wrote ${target}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

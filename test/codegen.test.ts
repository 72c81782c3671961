import { generate } from '@graphql-codegen/cli';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import config from '../client/codegen';

// dist/test/ → the repository root, where codegen's paths (schema.graphql, client/...) start.
const root = path.resolve(__dirname, '../..');

test('the SDK\'s generated operation types match schema.graphql and operations.graphql (npm run codegen)', async () => {
  // Runs the committed config in memory (nothing is written) and compares with the committed file.
  const outputs: { filename: string; content: string }[] = await generate({ ...config, cwd: root }, false);
  const targets = Object.keys(config.generates);
  assert.deepEqual(
    outputs.map((o) => path.relative(root, path.resolve(root, o.filename))).sort(),
    targets.sort(),
    'codegen produced other files than the config names',
  );
  for (const output of outputs) {
    const committed = await readFile(path.resolve(root, output.filename), 'utf8');
    assert.ok(
      committed === output.content,
      `${output.filename} is stale: run \`npm run codegen\` after changing schema.graphql or client/src/operations.graphql, and commit the result`,
    );
  }
});

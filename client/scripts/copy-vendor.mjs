// Copies hash-wasm's browser build (md5 only, ~10 KB, MIT; its licence header is kept in the
// file) into public/vendor/, where the page loads it as a classic script (global `hashwasm`).
// Part of `npm run build:client`; the output is not committed (public/.gitignore).
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'package.json'));
const dist = path.dirname(require.resolve('hash-wasm'));
const target = path.join(root, 'public/vendor/hash-wasm');
await mkdir(target, { recursive: true });
await copyFile(path.join(dist, 'md5.umd.min.js'), path.join(target, 'md5.umd.min.js'));
console.log(`copied ${path.relative(root, path.join(dist, 'md5.umd.min.js'))} to ${path.relative(root, target)}/`);

// graphql-ws's browser client (ES modules, no dependencies; MIT, its licence beside it), which
// the SDK's subscriptions import on first use from /vendor/graphql-ws/client.js.
const graphqlWs = packageDir('graphql-ws');
const wsTarget = path.join(root, 'public/vendor/graphql-ws');
await mkdir(wsTarget, { recursive: true });
for (const file of await readdir(path.join(graphqlWs, 'dist'))) {
  if (file === 'client.js' || /^common-[\w-]+\.js$/.test(file)) await copyFile(path.join(graphqlWs, 'dist', file), path.join(wsTarget, file));
}
await copyFile(path.join(graphqlWs, 'LICENSE.md'), path.join(wsTarget, 'LICENSE.md'));
console.log(`copied graphql-ws's browser client to ${path.relative(root, wsTarget)}/`);

// The GraphQL explorer (src/http/explorer.ts): GraphiQL's UMD build and the React it expects
// as globals, with their licences, into dist/explorer/ (served only when GRAPHQL_PLAYGROUND is on).
const explorer = path.join(root, 'dist/explorer');
await mkdir(explorer, { recursive: true });
const explorerFiles = [
  ['react', 'umd/react.production.min.js'],
  ['react-dom', 'umd/react-dom.production.min.js'],
  ['graphiql', 'graphiql.min.js'],
  ['graphiql', 'graphiql.min.css'],
];
for (const [pkg, file] of explorerFiles) {
  await copyFile(path.join(packageDir(pkg), file), path.join(explorer, path.basename(file)));
}
for (const pkg of new Set(explorerFiles.map(([p]) => p))) {
  await copyFile(path.join(packageDir(pkg), 'LICENSE'), path.join(explorer, `LICENSE.${pkg}`));
}
console.log(`copied graphiql, react and react-dom to ${path.relative(root, explorer)}/`);

function packageDir(name) {
  return path.dirname(require.resolve(`${name}/package.json`));
}

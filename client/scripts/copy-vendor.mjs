// Copies hash-wasm's browser build (md5 only, ~10 KB, MIT; its licence header is kept in the
// file) into public/vendor/, where the page loads it as a classic script (global `hashwasm`).
// Part of `npm run build:client`; the output is not committed (public/.gitignore).
import { copyFile, mkdir } from 'node:fs/promises';
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

/**
 * The SDK for browsers, as plain ES modules (compiled by client/tsconfig.browser.json into
 * public/js/). The md5 comes from hash-wasm's browser build, loaded first as a classic script:
 *
 *   <script src="/vendor/hash-wasm/md5.umd.min.js"></script>
 *   <script type="module">
 *     import { UploadClient } from '/js/src/browser.js';
 *     const client = new UploadClient({ url: '' });
 *     await client.login(username, password);
 *     await client.upload(fileInput.files[0], { onProgress: (p) => console.log(p.bytesUploaded) });
 *   </script>
 *
 * Upload ids are remembered in localStorage by file (name, size, lastModified), so picking the
 * same file again after a reload resumes it from the server's offset.
 */
import { WebStorageResumeStore } from './store.js';
import { BaseUploadClient, type ClientOptions, type Md5Hasher, type Platform } from './upload-client.js';

export * from './errors.js';
export * from './format.js';
export * from './live.js';
export * from './source.js';
export * from './store.js';
export * from './upload-client.js';
export type { TransportOptions, FetchLike } from './transport.js';

/** Where the page serves graphql-ws's client (public/vendor/, copied from the package). */
export const GRAPHQL_WS_MODULE = '/vendor/graphql-ws/client.js';

interface HashWasmGlobal {
  createMD5(): Promise<Md5Hasher>;
}

export const browserPlatform: Platform = {
  createMD5() {
    const hashwasm = (globalThis as { hashwasm?: HashWasmGlobal }).hashwasm;
    if (!hashwasm?.createMD5) {
      return Promise.reject(new Error('hash-wasm is not loaded: add <script src="/vendor/hash-wasm/md5.umd.min.js"> before the SDK.'));
    }
    return hashwasm.createMD5();
  },
  defaultStore: () => new WebStorageResumeStore(),
  // graphql-ws's browser build, copied by `npm run build:client` (no bundler: loaded on first use).
  createWsClient: async (options) => {
    const url: string = GRAPHQL_WS_MODULE;
    const { createClient } = (await import(url)) as typeof import('graphql-ws');
    return createClient(options);
  },
};

export class UploadClient extends BaseUploadClient {
  constructor(options: ClientOptions) {
    super(options, browserPlatform);
  }
}

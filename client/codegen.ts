import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * Types the SDK's operations (client/src/operations.graphql) against the server's committed
 * schema. Run from the repository root: `npm run codegen`. test/codegen.test.ts runs the same
 * config in memory and fails when client/src/generated/graphql.ts is stale.
 *
 * documentMode "string": each operation is a typed query string (TypedDocumentString), so the
 * SDK needs neither graphql-js nor a bundler in the browser.
 */
const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: 'client/src/operations.graphql',
  silent: true,
  generates: {
    'client/src/generated/graphql.ts': {
      plugins: ['typescript-operations', 'typed-document-node'],
      config: {
        documentMode: 'string',
        onlyOperationTypes: true,
        enumsAsTypes: true,
        useTypeImports: true,
        strictScalars: true,
        scalars: {
          DateTime: 'string',
          SafeInt: 'number',
          // The multipart request sends null here and the bytes in a separate part.
          Upload: 'Blob | null',
        },
      },
    },
  },
};

export default config;

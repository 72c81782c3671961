import type { ApolloServerPlugin } from '@apollo/server';
import { getNamedType, GraphQLError, GraphQLScalarType, print, typeFromAST } from 'graphql';
import { Upload } from 'graphql-upload-minimal';
import type { Readable } from 'node:stream';
import { Errors } from '../errors';
import { BodyWatch } from '../uploads/chunk-pipeline';
import type { RequestContext } from './context';

/** How long a body read to its file's end may take to deliver its closing boundary. */
const TRAILING_BYTES_WAIT_MS = 200;

/**
 * Reads every uploaded file no resolver opened (an operation refused before its resolver ran:
 * invalid variables, say) before the response goes out: answering while the client is still
 * sending makes it see a reset connection instead of the error. Reading stops at the largest
 * chunk; a body still unread then (refused, or larger than any chunk may be) gets its answer
 * with `Connection: close` rather than being read for as long as it comes.
 */
export const drainUnreadUploads: ApolloServerPlugin<RequestContext> = {
  async requestDidStart() {
    return {
      async willSendResponse({ request, contextValue, response }) {
        const { config } = contextValue.services;
        const limit = config.maxChunkSize;
        await Promise.all(findUploads(request.variables).map((upload) => drainIfUnread(upload, limit, config.bodyTimeoutSeconds * 1000)));
        if (!(await contextValue.bodyComplete(TRAILING_BYTES_WAIT_MS))) response.http.headers.set('connection', 'close');
      },
    };
  },
};

/**
 * A multipart `map` can put a file into any variable. graphql-js would refuse a file in a
 * String variable with a message that prints the Upload object's insides (its promise and
 * resolvers); this refuses it first, in words. Runs after the authentication check, so
 * UNAUTHENTICATED still comes first.
 */
export const refuseMisplacedUploads: ApolloServerPlugin = {
  async requestDidStart() {
    return {
      async didResolveOperation({ request, operation, schema }) {
        for (const definition of operation?.variableDefinitions ?? []) {
          const type = typeFromAST(schema, definition.type);
          const named = type && getNamedType(type);
          if (!(named instanceof GraphQLScalarType) || named.name === 'Upload') continue;
          const name = definition.variable.name.value;
          if (findUploads(request.variables?.[name]).length === 0) continue;
          const refusal = Errors.badInput(`Variable "$${name}" is of type ${print(definition.type)}, but the multipart map puts a file in it: only Upload variables take files.`);
          throw new GraphQLError(refusal.message, { originalError: refusal, extensions: { code: refusal.graphqlCode, http: { status: 400 } } });
        }
      },
    };
  },
};

function findUploads(value: unknown, found: Upload[] = [], depth = 0): Upload[] {
  if (value instanceof Upload) found.push(value);
  else if (value && typeof value === 'object' && depth < 8) {
    for (const child of Object.values(value)) findUploads(child, found, depth + 1);
  }
  return found;
}

async function drainIfUnread(upload: Upload, limit: number, idleMs: number): Promise<void> {
  let stream: Readable;
  try {
    // createReadStream throws once a resolver has taken the stream: then it is the resolver's.
    stream = (await upload.promise).createReadStream();
  } catch {
    return;
  }
  stream.on('error', () => {});
  const watch = new BodyWatch(stream, idleMs);
  await watch.drain(limit);
  watch.stop();
}

import type { ApolloServerPlugin } from '@apollo/server';
import { Upload } from 'graphql-upload-minimal';
import { Readable } from 'node:stream';

/**
 * Reads to the end every uploaded file no resolver opened (an operation refused before its
 * resolver ran: bad token, invalid variables) before the response goes out. Answering while
 * the client is still sending makes it see a reset connection instead of the error.
 */
export const drainUnreadUploads: ApolloServerPlugin = {
  async requestDidStart() {
    return {
      async willSendResponse({ request }) {
        await Promise.all(findUploads(request.variables).map(drainIfUnread));
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

async function drainIfUnread(upload: Upload): Promise<void> {
  let stream: Readable;
  try {
    // createReadStream throws once a resolver has taken the stream: then it is the resolver's.
    stream = (await upload.promise).createReadStream();
  } catch {
    return;
  }
  stream.on('error', () => {});
  stream.resume();
  await new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  });
}

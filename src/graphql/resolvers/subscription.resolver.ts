import { Arg, Authorized, Ctx, ID, Resolver, Root, Subscription, type SubscribeResolverData } from 'type-graphql';
import { Errors } from '../../errors';
import type { LibraryChange, UploadView } from '../../events/event-hub';
import { requireUser, type RequestContext } from '../context';
import { FileType } from '../types/file.type';
import { LibraryEvent, LibraryEventKind } from '../types/library-event.type';
import { ChunkedUploadType } from '../types/upload.type';

/** WebSocket close code (1013: try again later) for a subscriber whose events piled up, or that missed some. */
export const TRY_AGAIN_LATER = 1013;

function hubOf(ctx: RequestContext) {
  if (!ctx.events) throw Errors.badInput('Subscriptions are served over WebSocket at /graphql (graphql-transport-ws).');
  return ctx.events;
}

@Resolver()
export class SubscriptionResolver {
  @Authorized()
  @Subscription(() => ChunkedUploadType, {
    description:
      'One of your uploads as it moves: its state now, then each time its offset moves (at most every 250 ms) and when its status changes; ends after a final status.',
    subscribe: ({ args, context }: SubscribeResolverData<unknown, { uploadId?: string }, RequestContext>) =>
      hubOf(context).uploadProgress(requireUser(context), String(args.uploadId)),
  })
  uploadProgress(@Root() upload: UploadView, @Arg('uploadId', () => ID) _uploadId: string, @Ctx() ctx: RequestContext): ChunkedUploadType {
    return ChunkedUploadType.from(upload, {
      maxChunkSize: ctx.services.config.maxChunkSize,
      chunkSize: ctx.services.uploads.preferredChunkSize(upload),
    });
  }

  @Authorized()
  @Subscription(() => ChunkedUploadType, {
    description:
      'All your uploads as they move, from every device and instance: each one started, its progress (at most every 250 ms an upload) and its final status.',
    subscribe: ({ context }: SubscribeResolverData<unknown, { uploadId?: string }, RequestContext>) =>
      hubOf(context).myUploads(requireUser(context), () => context.closeConnection?.(TRY_AGAIN_LATER, 'Too slow: upload events piled up')),
  })
  myUploadsChanged(@Root() upload: UploadView, @Ctx() ctx: RequestContext): ChunkedUploadType {
    return this.uploadProgress(upload, upload.id, ctx);
  }

  @Authorized()
  @Subscription(() => LibraryEvent, {
    description: 'Every change to the library, from every instance, in the order it happened.',
    subscribe: ({ context }: SubscribeResolverData<unknown, { uploadId?: string }, RequestContext>) => {
      requireUser(context);
      return hubOf(context).libraryChanges(
        () => context.closeConnection?.(TRY_AGAIN_LATER, 'Too slow: library events piled up'),
        () => context.closeConnection?.(TRY_AGAIN_LATER, 'Library events were missed while the server reconnected to its database: subscribe again and read the list afresh'),
      );
    },
  })
  libraryChanged(@Root() change: LibraryChange): LibraryEvent {
    return Object.assign(new LibraryEvent(), { kind: change.kind as LibraryEventKind, file: FileType.from(change.file) });
  }
}

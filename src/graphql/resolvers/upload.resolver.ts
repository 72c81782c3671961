import { GraphQLUpload, type FileUpload } from 'graphql-upload-minimal';
import { Arg, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { Readable } from 'node:stream';
import { UploadStatus, type ChunkedUpload } from '../../entities';
import { Errors } from '../../errors';
import { MAX_PARTS_AHEAD } from '../../uploads/part-receiver';
import { MAX_UPLOADS_PAGE } from '../../uploads/upload.service';
import { requireUser, type RequestContext } from '../context';
import { SafeInt } from '../scalars';
import { FileType } from '../types/file.type';
import { ChunkedUploadType, ServerLimits, SignedPart, StartUploadInput } from '../types/upload.type';

@Resolver(() => ChunkedUploadType)
export class UploadResolver {
  @Authorized()
  @Query(() => ChunkedUploadType, { nullable: true, description: 'One of your uploads: where to resume it.' })
  async upload(@Arg('id', () => ID) id: string, @Ctx() ctx: RequestContext): Promise<ChunkedUploadType> {
    return this.view(ctx, await ctx.services.uploads.get(requireUser(ctx), id));
  }

  @Authorized()
  @Query(() => [ChunkedUploadType], { description: `Your uploads, newest first, \`first\` (at most ${MAX_UPLOADS_PAGE}) at a time; \`after\`: the id of the last upload of the previous page.` })
  async myUploads(
    @Arg('status', () => UploadStatus, { nullable: true }) status: UploadStatus | null,
    @Arg('first', () => Int, { defaultValue: 100 }) first: number,
    @Arg('after', () => ID, { nullable: true }) after: string | null,
    @Ctx() ctx: RequestContext,
  ): Promise<ChunkedUploadType[]> {
    const uploads = await ctx.services.uploads.listMine(requireUser(ctx), { status, first, after });
    return uploads.map((u) => this.view(ctx, u));
  }

  @Authorized()
  @Query(() => ServerLimits)
  serverLimits(@Ctx() ctx: RequestContext): ServerLimits {
    const { maxFileSize, maxChunkSize } = ctx.services.config;
    return Object.assign(new ServerLimits(), {
      maxFileSize,
      maxChunkSize,
      directUploads: ctx.services.directUploads.available,
      parallelParts: true,
      maxPartsAhead: MAX_PARTS_AHEAD,
    });
  }

  @Authorized()
  @Mutation(() => [SignedPart], {
    description: `Presigned PUT URLs for parts of your direct upload (at most 100 at a time), valid DIRECT_URL_TTL seconds; signing a part again is allowed. With partMd5s (hex, one per part) each URL requires that Content-MD5, so the store refuses a damaged part.`,
  })
  async signUploadParts(
    @Arg('uploadId', () => ID) uploadId: string,
    @Arg('partNumbers', () => [Int]) partNumbers: number[],
    @Arg('partMd5s', () => [String], { nullable: true }) partMd5s: string[] | null,
    @Ctx() ctx: RequestContext,
  ): Promise<SignedPart[]> {
    const signed = await ctx.services.directUploads.sign(requireUser(ctx), uploadId, partNumbers, partMd5s);
    return signed.map((p) => Object.assign(new SignedPart(), p));
  }

  @FieldResolver(() => [Int], {
    description: 'Part numbers not stored yet, ascending (direct uploads: as the object store lists them); empty for an upload not in parts.',
  })
  async missingParts(
    @Root() upload: ChunkedUploadType,
    @Arg('first', () => Int, { defaultValue: 100 }) first: number,
    @Ctx() ctx: RequestContext,
  ): Promise<number[]> {
    if (!upload.partSize) return [];
    const { uploads, directUploads } = ctx.services;
    const current = await uploads.get(requireUser(ctx), upload.id);
    return upload.direct ? directUploads.missingParts(current, first) : uploads.missingParts(current, first);
  }

  @Authorized()
  @Mutation(() => ChunkedUploadType)
  async startUpload(@Arg('input', () => StartUploadInput) input: StartUploadInput, @Ctx() ctx: RequestContext): Promise<ChunkedUploadType> {
    return this.view(ctx, await ctx.services.uploads.start(requireUser(ctx), input));
  }

  @Authorized()
  @Mutation(() => ChunkedUploadType, { description: 'Appends a chunk at the stored offset.' })
  async uploadChunk(
    @Arg('uploadId', () => ID) uploadId: string,
    @Arg('offset', () => SafeInt) offset: number,
    // type-graphql awaits the Upload's promise before this runs; its stream is still being read.
    @Arg('chunk', () => GraphQLUpload) chunk: FileUpload,
    @Arg('chunkMd5', () => String, { nullable: true }) chunkMd5: string | null,
    @Ctx() ctx: RequestContext,
  ): Promise<ChunkedUploadType> {
    const upload = await ctx.services.uploads.appendChunk(requireUser(ctx), { uploadId, offset, body: openChunk(chunk), chunkMd5 });
    return this.view(ctx, upload);
  }

  @Authorized()
  @Mutation(() => ChunkedUploadType, {
    description: `Stores one part of an upload started with a partSize: parts in any order and several at once (at most ${MAX_PARTS_AHEAD} past the part where offset stands); a stored part may be sent again only unchanged.`,
  })
  async uploadPart(
    @Arg('uploadId', () => ID) uploadId: string,
    @Arg('partNumber', () => Int) partNumber: number,
    @Arg('chunk', () => GraphQLUpload) chunk: FileUpload,
    @Arg('chunkMd5', () => String, { nullable: true }) chunkMd5: string | null,
    @Ctx() ctx: RequestContext,
  ): Promise<ChunkedUploadType> {
    const upload = await ctx.services.uploads.appendPart(requireUser(ctx), { uploadId, partNumber, body: openChunk(chunk), chunkMd5 });
    return this.view(ctx, upload);
  }

  @Authorized()
  @Mutation(() => FileType, { description: 'Checks size and md5 and files the upload in the library.' })
  async completeUpload(
    @Arg('uploadId', () => ID) uploadId: string,
    @Arg('md5', () => String) md5: string,
    @Arg('description', () => String, { nullable: true }) description: string | null,
    @Ctx() ctx: RequestContext,
  ): Promise<FileType> {
    return FileType.from(await ctx.services.uploads.complete(requireUser(ctx), { uploadId, md5, description }));
  }

  @Authorized()
  @Mutation(() => ChunkedUploadType)
  async abortUpload(@Arg('uploadId', () => ID) uploadId: string, @Ctx() ctx: RequestContext): Promise<ChunkedUploadType> {
    return this.view(ctx, await ctx.services.uploads.abort(requireUser(ctx), uploadId));
  }

  private view(ctx: RequestContext, upload: ChunkedUpload): ChunkedUploadType {
    return ChunkedUploadType.from(upload, {
      maxChunkSize: ctx.services.config.maxChunkSize,
      chunkSize: ctx.services.uploads.preferredChunkSize(upload),
    });
  }
}

/** The multipart parser's own failures (a file part cut short, say) are the client's input errors. */
function openChunk(chunk: FileUpload): Readable {
  try {
    return chunk.createReadStream();
  } catch (err) {
    throw Errors.badInput(`The chunk could not be read: ${(err as Error).message}`);
  }
}

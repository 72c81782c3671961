import { Arg, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { FileStatus } from '../../entities';
import { requireUser, type RequestContext } from '../context';
import { DateTime } from '../scalars';
import { FileConnection } from '../types/file-connection.type';
import { FileType } from '../types/file.type';

@Resolver(() => FileType)
export class FileResolver {
  /** Federation: another subgraph's reference to a File, resolved by id. */
  static async resolveReference(reference: { id: string }, ctx: RequestContext): Promise<FileType | null> {
    requireUser(ctx);
    const file = await ctx.services.files.findById(reference.id);
    return file && FileType.from(file);
  }

  @Authorized()
  @Query(() => FileType, { nullable: true })
  async file(@Arg('id', () => ID) id: string, @Ctx() ctx: RequestContext): Promise<FileType | null> {
    const file = await ctx.services.files.findById(id);
    return file && FileType.from(file);
  }

  @Authorized()
  @Query(() => FileConnection, { description: 'The library, newest first: READY files unless status is given.' })
  async files(
    @Arg('first', () => Int, { defaultValue: 20, description: 'At most 100.' }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Arg('uploadedBefore', () => DateTime, { nullable: true, description: 'Only files uploaded strictly before.' })
    uploadedBefore: Date | null,
    @Arg('search', () => String, { nullable: true, description: 'Case-insensitive substring of the name.' }) search: string | null,
    @Arg('status', () => FileStatus, { nullable: true, description: 'Files in this status; READY when not given.' }) status: FileStatus | null,
    @Ctx() ctx: RequestContext,
  ): Promise<FileConnection> {
    const page = await ctx.services.files.list({ first, after, uploadedBefore, search, status });
    const edges = page.files.map((file, i) => ({ node: FileType.from(file), cursor: page.cursors[i] }));
    return {
      edges,
      pageInfo: { hasNextPage: page.hasNextPage, endCursor: edges.at(-1)?.cursor ?? null },
      totalCount: page.totalCount,
    };
  }

  @Authorized()
  @Query(() => FileType, { nullable: true, description: 'The newest READY file, or the newest uploaded strictly before a date.' })
  async newestFile(
    @Arg('uploadedBefore', () => DateTime, { nullable: true }) uploadedBefore: Date | null,
    @Ctx() ctx: RequestContext,
  ): Promise<FileType | null> {
    const file = await ctx.services.files.newest(uploadedBefore);
    return file && FileType.from(file);
  }

  @Authorized()
  @Mutation(() => FileType, { description: "The file's author or an admin." })
  async updateFile(
    @Arg('id', () => ID) id: string,
    @Arg('description', () => String) description: string,
    @Ctx() ctx: RequestContext,
  ): Promise<FileType> {
    return FileType.from(await ctx.services.files.updateDescription(requireUser(ctx), id, description));
  }

  @Authorized()
  @Mutation(() => Boolean, { description: "The file's author or an admin. Removes the row and the bytes." })
  async deleteFile(@Arg('id', () => ID) id: string, @Ctx() ctx: RequestContext): Promise<boolean> {
    await ctx.services.files.delete(requireUser(ctx), id);
    return true;
  }

  @FieldResolver(() => String, {
    description: 'A short-lived signed path (/files/<id>/content?token=...) for this file only; works without a header.',
  })
  downloadUrl(@Root() file: FileType, @Ctx() ctx: RequestContext): string {
    return `/files/${file.id}/content?token=${ctx.services.auth.issueDownloadToken(file.id)}`;
  }
}

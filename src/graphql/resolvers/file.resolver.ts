import { Arg, Authorized, Ctx, FieldResolver, ID, Query, Resolver, Root } from 'type-graphql';
import { type RequestContext } from '../context';
import { FileType } from '../types/file.type';

@Resolver(() => FileType)
export class FileResolver {
  @Authorized()
  @Query(() => FileType, { nullable: true })
  async file(@Arg('id', () => ID) id: string, @Ctx() ctx: RequestContext): Promise<FileType | null> {
    const file = await ctx.services.files.findById(id);
    return file && FileType.from(file);
  }

  @FieldResolver(() => String, {
    description: 'A short-lived signed path (/files/<id>/content?token=...) for this file only; works without a header.',
  })
  downloadUrl(@Root() file: FileType, @Ctx() ctx: RequestContext): string {
    return `/files/${file.id}/content?token=${ctx.services.auth.issueDownloadToken(file.id)}`;
  }
}

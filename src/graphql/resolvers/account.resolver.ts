import { Arg, Authorized, Ctx, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import { TokenScope } from '../../entities';
import { requireCredential, requireUser, type RequestContext } from '../context';
import { AccessTokenType, NewAccessTokenType } from '../types/access-token.type';

/** One's own session and access tokens. */
@Resolver()
export class AccountResolver {
  @Authorized()
  @Mutation(() => Boolean, { description: 'The token of this request stops working (an access token is revoked).' })
  async logout(@Ctx() ctx: RequestContext): Promise<boolean> {
    await ctx.services.auth.logout(requireCredential(ctx));
    return true;
  }

  @Authorized()
  @Mutation(() => Boolean, { description: 'Every login token of the caller stops working; access tokens stay.' })
  async logoutEverywhere(@Ctx() ctx: RequestContext): Promise<boolean> {
    await ctx.services.auth.logoutEverywhere(requireUser(ctx));
    return true;
  }

  @Authorized()
  @Query(() => [AccessTokenType], { description: 'The caller\'s access tokens, newest first.' })
  async myAccessTokens(@Ctx() ctx: RequestContext): Promise<AccessTokenType[]> {
    return (await ctx.services.accessTokens.listMine(requireUser(ctx))).map((token) => AccessTokenType.from(token));
  }

  @Authorized()
  @Mutation(() => NewAccessTokenType, { description: 'The token is in the answer only: store it now. `expiresInDays`: 1 to 3650, or null for never.' })
  async createAccessToken(
    @Arg('name', () => String) name: string,
    @Arg('scopes', () => [TokenScope]) scopes: TokenScope[],
    @Arg('expiresInDays', () => Int, { nullable: true }) expiresInDays: number | null,
    @Ctx() ctx: RequestContext,
  ): Promise<NewAccessTokenType> {
    const { token, accessToken } = await ctx.services.accessTokens.create(requireUser(ctx), { name, scopes, expiresInDays });
    return { token, accessToken: AccessTokenType.from(accessToken) };
  }

  @Authorized()
  @Mutation(() => Boolean, { description: 'One of the caller\'s own tokens.' })
  async revokeAccessToken(@Arg('id', () => ID) id: string, @Ctx() ctx: RequestContext): Promise<boolean> {
    await ctx.services.accessTokens.revoke(requireUser(ctx), id);
    return true;
  }
}

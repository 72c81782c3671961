import { Arg, Authorized, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { requireUser, type RequestContext } from '../context';
import { AuthPayload, UserType } from '../types/user.type';

@Resolver()
export class AuthResolver {
  @Mutation(() => AuthPayload, { description: 'Trades a username and password for a bearer token.' })
  async login(
    @Arg('username', () => String) username: string,
    @Arg('password', () => String) password: string,
    @Ctx() ctx: RequestContext,
  ): Promise<AuthPayload> {
    const { token, user } = await ctx.services.auth.login(username, password, ctx.clientAddress);
    return { token, user: UserType.from(user) };
  }

  @Authorized()
  @Query(() => UserType, { nullable: true })
  me(@Ctx() ctx: RequestContext): UserType {
    return UserType.from(requireUser(ctx));
  }
}

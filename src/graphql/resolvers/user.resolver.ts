import { Arg, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Errors } from '../../errors';
import { ADMIN } from '../auth-checker';
import { requireUser, type RequestContext } from '../context';
import { SafeInt } from '../scalars';
import { UserConnection } from '../types/user-connection.type';
import { UserType } from '../types/user.type';

@Resolver(() => UserType)
export class UserResolver {
  /** Federation: another subgraph's reference to a User, resolved by id. */
  static async resolveReference(reference: { id: string }, ctx: RequestContext): Promise<UserType | null> {
    requireUser(ctx);
    const user = await ctx.services.users.findById(reference.id);
    return user && UserType.from(user);
  }

  @Authorized(ADMIN)
  @Query(() => UserConnection, { description: 'Admins only. Everyone, oldest first; `search`: a part of the username, any case.' })
  async users(
    @Arg('first', () => Int, { nullable: true, defaultValue: 50, description: 'At most 200.' }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Arg('search', () => String, { nullable: true }) search: string | null,
    @Ctx() ctx: RequestContext,
  ): Promise<UserConnection> {
    const page = await ctx.services.users.page({ first: first ?? 50, after, search });
    const edges = page.users.map((user) => ({ node: UserType.from(user), cursor: user.id }));
    return { edges, pageInfo: { hasNextPage: page.hasNextPage, endCursor: edges.at(-1)?.cursor ?? null }, totalCount: page.totalCount };
  }

  @Authorized(ADMIN)
  @Mutation(() => UserType, { description: 'Admins only. Usernames are unique regardless of case.' })
  async createUser(
    @Arg('username', () => String) username: string,
    @Arg('password', () => String) password: string,
    @Arg('isAdmin', () => Boolean, { nullable: true, defaultValue: false }) isAdmin: boolean,
    @Ctx() ctx: RequestContext,
  ): Promise<UserType> {
    return UserType.from(await ctx.services.users.create({ username, password, isAdmin }));
  }

  @Authorized(ADMIN)
  @Mutation(() => UserType, {
    description: 'Admins only. A disabled user is out at once: no token of theirs works, and login answers as for a wrong password. The last admin cannot be demoted or disabled.',
  })
  async updateUser(
    @Arg('id', () => ID) id: string,
    @Arg('isAdmin', () => Boolean, { nullable: true }) isAdmin: boolean | null,
    @Arg('disabled', () => Boolean, { nullable: true }) disabled: boolean | null,
    @Ctx() ctx: RequestContext,
  ): Promise<UserType> {
    return UserType.from(await ctx.services.userAdmin.update(id, { isAdmin, disabled }));
  }

  @Authorized(ADMIN)
  @Mutation(() => Boolean, {
    description: 'Admins only. Their files stay (without an author); their uploads in progress are aborted; their tokens end. Not the last admin.',
  })
  async deleteUser(@Arg('id', () => ID) id: string, @Ctx() ctx: RequestContext): Promise<boolean> {
    await ctx.services.userAdmin.delete(id);
    return true;
  }

  @Authorized()
  @Mutation(() => Boolean, { description: 'Needs the old password; login tokens issued before the change stop working (access tokens stay).' })
  async changePassword(
    @Arg('oldPassword', () => String) oldPassword: string,
    @Arg('newPassword', () => String) newPassword: string,
    @Ctx() ctx: RequestContext,
  ): Promise<boolean> {
    await ctx.services.users.changePassword(requireUser(ctx), oldPassword, newPassword, ctx.clientAddress);
    return true;
  }

  @Authorized(ADMIN)
  @Mutation(() => UserType, { description: 'Admins only. null lifts the limit; a quota below what the user uses already refuses their new uploads only.' })
  async setUserQuota(
    @Arg('userId', () => ID) userId: string,
    @Arg('quotaBytes', () => SafeInt, { nullable: true }) quotaBytes: number | null,
    @Ctx() ctx: RequestContext,
  ): Promise<UserType> {
    return UserType.from(await ctx.services.quotas.setQuota(userId, quotaBytes ?? null));
  }

  @FieldResolver(() => SafeInt, {
    description: "The user's stored files plus the declared sizes of their uploads in progress. The user themselves and admins only.",
  })
  async usedBytes(@Root() user: UserType, @Ctx() ctx: RequestContext): Promise<number> {
    const viewer = requireUser(ctx);
    if (viewer.id !== user.id && !viewer.isAdmin) throw Errors.forbidden("Only the user and admins may see a user's usage.");
    return ctx.services.quotas.usedBytes(user.id);
  }
}

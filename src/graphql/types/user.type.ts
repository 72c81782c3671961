import { Directive, Field, ID, ObjectType } from 'type-graphql';
import type { User } from '../../entities';
import { DateTime, SafeInt } from '../scalars';

// Federation entity (used when FEDERATION=true; plain SDL does not print it).
@Directive('@key(fields: "id")')
@ObjectType('User')
export class UserType {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  username!: string;

  @Field(() => Boolean)
  isAdmin!: boolean;

  @Field(() => Boolean, { description: 'A disabled user cannot log in, and none of their tokens work.' })
  disabled!: boolean;

  @Field(() => DateTime)
  createdAt!: Date;

  @Field(() => SafeInt, { nullable: true, description: 'The most the user may store (files and uploads in progress); null: no limit.' })
  quotaBytes!: number | null;

  static from(user: User): UserType {
    return Object.assign(new UserType(), {
      id: user.id,
      username: user.username,
      isAdmin: user.isAdmin,
      disabled: user.disabled,
      createdAt: user.createdAt,
      quotaBytes: user.quotaBytes ?? null,
    });
  }
}

@ObjectType('AuthPayload')
export class AuthPayload {
  @Field(() => String)
  token!: string;

  @Field(() => UserType)
  user!: UserType;
}

import { Directive, Field, ID, ObjectType } from 'type-graphql';
import type { User } from '../../entities';
import { DateTime } from '../scalars';

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

  static from(user: User): UserType {
    return Object.assign(new UserType(), { id: user.id, username: user.username, isAdmin: user.isAdmin, disabled: user.disabled, createdAt: user.createdAt });
  }
}

@ObjectType('AuthPayload')
export class AuthPayload {
  @Field(() => String)
  token!: string;

  @Field(() => UserType)
  user!: UserType;
}

import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { TokenScope, type AccessToken } from '../../entities';
import { DateTime } from '../scalars';

registerEnumType(TokenScope, {
  name: 'TokenScope',
  description: 'READ: queries and downloads. UPLOAD: READ plus the upload operations on one\'s own uploads (GraphQL and tus). FULL: all the user may do.',
});

@ObjectType('AccessToken', { description: 'A credential for scripts, sent as "Authorization: Bearer <token>". Only its hash is stored.' })
export class AccessTokenType {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => [TokenScope])
  scopes!: TokenScope[];

  @Field(() => DateTime)
  createdAt!: Date;

  @Field(() => DateTime, { nullable: true, description: 'To the minute or so: it is not written on every request.' })
  lastUsedAt!: Date | null;

  @Field(() => DateTime, { nullable: true, description: 'Null: it does not expire.' })
  expiresAt!: Date | null;

  static from(token: AccessToken): AccessTokenType {
    return Object.assign(new AccessTokenType(), {
      id: token.id,
      name: token.name,
      scopes: token.scopes,
      createdAt: token.createdAt,
      lastUsedAt: token.lastUsedAt ?? null,
      expiresAt: token.expiresAt ?? null,
    });
  }
}

@ObjectType('NewAccessToken')
export class NewAccessTokenType {
  @Field(() => String, { description: 'The secret, shown this once: the server keeps only its hash.' })
  token!: string;

  @Field(() => AccessTokenType)
  accessToken!: AccessTokenType;
}

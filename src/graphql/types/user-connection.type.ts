import { Field, Int, ObjectType } from 'type-graphql';
import { PageInfo } from './file-connection.type';
import { UserType } from './user.type';

@ObjectType('UserEdge')
export class UserEdge {
  @Field(() => UserType)
  node!: UserType;

  @Field(() => String, { description: 'Pass as `after` to get the users that follow this one.' })
  cursor!: string;
}

@ObjectType('UserConnection')
export class UserConnection {
  @Field(() => [UserEdge])
  edges!: UserEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;

  @Field(() => Int, { description: 'Users matching the search, across all pages.' })
  totalCount!: number;
}

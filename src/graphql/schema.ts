import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema, type BuildSchemaOptions } from 'type-graphql';
import { authChecker } from './auth-checker';
import { AccountResolver } from './resolvers/account.resolver';
import { AuthResolver } from './resolvers/auth.resolver';
import { FileResolver } from './resolvers/file.resolver';
import { SubscriptionResolver } from './resolvers/subscription.resolver';
import { UploadResolver } from './resolvers/upload.resolver';
import { UserResolver } from './resolvers/user.resolver';
import { DateTime } from './scalars';

const options: BuildSchemaOptions = {
  resolvers: [AuthResolver, AccountResolver, UploadResolver, FileResolver, UserResolver, SubscriptionResolver],
  authChecker,
  scalarsMap: [{ type: Date, scalar: DateTime }],
  validate: false,
  // type-graphql insists on a PubSub once there are subscriptions, although every one of ours
  // brings its own `subscribe` (events/event-hub.ts, fed by PostgreSQL): none is ever used.
  pubSub: {
    publish: () => {
      throw new Error('Events travel through PostgreSQL (events/), not through a PubSub.');
    },
    subscribe: () => {
      throw new Error('Events travel through PostgreSQL (events/), not through a PubSub.');
    },
  },
};

export function buildAppSchema(overrides: Partial<BuildSchemaOptions> = {}): Promise<GraphQLSchema> {
  return buildSchema({ ...options, ...overrides } as BuildSchemaOptions);
}

/** The SDL committed as schema.graphql: sorted, so changes show up as small diffs. */
export async function printAppSchema(): Promise<string> {
  return `${printSchema(lexicographicSortSchema(await buildAppSchema()))}\n`;
}

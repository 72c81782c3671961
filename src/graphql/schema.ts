import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { authChecker } from './auth-checker';
import { AuthResolver } from './resolvers/auth.resolver';
import { FileResolver } from './resolvers/file.resolver';
import { UploadResolver } from './resolvers/upload.resolver';
import { UserResolver } from './resolvers/user.resolver';
import { DateTime } from './scalars';

export function buildAppSchema(): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [AuthResolver, UploadResolver, FileResolver, UserResolver],
    authChecker,
    scalarsMap: [{ type: Date, scalar: DateTime }],
    validate: false,
  });
}

/** The SDL committed as schema.graphql: sorted, so changes show up as small diffs. */
export async function printAppSchema(): Promise<string> {
  return `${printSchema(lexicographicSortSchema(await buildAppSchema()))}\n`;
}

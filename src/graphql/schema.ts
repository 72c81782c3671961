import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import { printSchemaWithDirectives } from '@graphql-tools/utils';
import gql from 'graphql-tag';
import { buildSchema, createResolversMap, type BuildSchemaOptions } from 'type-graphql';
import { authChecker } from './auth-checker';
import { AuthResolver } from './resolvers/auth.resolver';
import { FileResolver } from './resolvers/file.resolver';
import { UploadResolver } from './resolvers/upload.resolver';
import { UserResolver } from './resolvers/user.resolver';
import { DateTime } from './scalars';

const options: BuildSchemaOptions = {
  resolvers: [AuthResolver, UploadResolver, FileResolver, UserResolver],
  authChecker,
  scalarsMap: [{ type: Date, scalar: DateTime }],
  validate: false,
};

export function buildAppSchema(): Promise<GraphQLSchema> {
  return buildSchema(options);
}

/**
 * The same API as an Apollo Federation 2 subgraph: File and User are entities keyed by id,
 * so other subgraphs can reference them and the router can ask us to resolve them.
 */
export async function buildSubgraphAppSchema(): Promise<GraphQLSchema> {
  const schema = await buildSchema({ ...options, skipCheck: true });
  const typeDefs = gql`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    ${printSchemaWithDirectives(schema)}
  `;
  const resolvers = createResolversMap(schema) as Record<string, Record<string, unknown>>;
  resolvers.File = { ...resolvers.File, __resolveReference: FileResolver.resolveReference };
  resolvers.User = { ...resolvers.User, __resolveReference: UserResolver.resolveReference };
  return buildSubgraphSchema([{ typeDefs, resolvers: resolvers as GraphQLResolverMap<unknown> }]);
}

/** The SDL committed as schema.graphql: sorted, so changes show up as small diffs. */
export async function printAppSchema(): Promise<string> {
  return `${printSchema(lexicographicSortSchema(await buildAppSchema()))}\n`;
}

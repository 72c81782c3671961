import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import { printSchemaWithDirectives } from '@graphql-tools/utils';
import type { GraphQLSchema } from 'graphql';
import gql from 'graphql-tag';
import { createResolversMap } from 'type-graphql';
import { FileResolver } from './resolvers/file.resolver';
import { UserResolver } from './resolvers/user.resolver';
import { buildAppSchema } from './schema';

/**
 * The same API as an Apollo Federation 2 subgraph: File and User are entities keyed by id,
 * so other subgraphs can reference them and the router can ask us to resolve them.
 * Its own module, loaded only with FEDERATION=true: a plain server keeps @apollo/subgraph
 * out of its heap.
 */
export async function buildSubgraphAppSchema(): Promise<GraphQLSchema> {
  const schema = await buildAppSchema({ skipCheck: true });
  const typeDefs = gql`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    ${printSchemaWithDirectives(schema)}
  `;
  const resolvers = createResolversMap(schema) as Record<string, Record<string, unknown>>;
  resolvers.File = { ...resolvers.File, __resolveReference: FileResolver.resolveReference };
  resolvers.User = { ...resolvers.User, __resolveReference: UserResolver.resolveReference };
  return buildSubgraphSchema([{ typeDefs, resolvers: resolvers as GraphQLResolverMap<unknown> }]);
}

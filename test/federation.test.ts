import { composeServices } from '@apollo/composition';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import gql from 'graphql-tag';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GraphQLClient, randomFile } from './helpers/client';
import { startServer, type TestServer } from './helpers/server';
import { uploadFile } from './helpers/upload';

interface GatewayContext {
  authorization?: string;
}

/** A second, tiny subgraph: reviews that point at our Files and add a field to File. */
function reviewsSubgraph(fileIds: string[]) {
  const reviews = fileIds.map((fileId, i) => ({ id: `r${i}`, body: `review of file ${i}`, fileId }));
  return new ApolloServer({
    schema: buildSubgraphSchema([
      {
        typeDefs: gql`
          extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
          type Review { id: ID! body: String! file: File! }
          type File @key(fields: "id") { id: ID! reviews: [Review!]! }
          type Query { reviews: [Review!]! }
        `,
        resolvers: {
          Query: { reviews: () => reviews },
          Review: { file: (review: { fileId: string }) => ({ __typename: 'File', id: review.fileId }) },
          File: { reviews: (file: { id: string }) => reviews.filter((r) => r.fileId === file.id) },
        } as any,
      },
    ]),
  });
}

describe('Apollo Federation 2 subgraph (FEDERATION=true)', () => {
  let files: TestServer;
  const stops: (() => Promise<unknown>)[] = [];
  let gatewayUrl: string;
  let fileIds: string[];

  before(async () => {
    files = await startServer({ FEDERATION: 'true' });
    stops.push(() => files.close());
    fileIds = [];
    for (const name of ['one.txt', 'two.txt']) fileIds.push((await uploadFile(files.admin, randomFile(10), name)).id);

    const reviews = reviewsSubgraph(fileIds);
    const { url: reviewsUrl } = await startStandaloneServer(reviews, { listen: { port: 0, host: '127.0.0.1' } });
    stops.push(() => reviews.stop());

    const { _service } = await files.admin.data(`{ _service { sdl } }`);
    const reviewsSdl = await GraphQLClient.for(reviewsUrl.replace(/\/$/, '')).data(`{ _service { sdl } }`);
    const composed = composeServices([
      { name: 'files', typeDefs: parse(_service.sdl), url: `${files.url}/graphql` },
      { name: 'reviews', typeDefs: parse(reviewsSdl._service.sdl), url: reviewsUrl },
    ]);
    assert.deepEqual(composed.errors ?? [], [], 'the two subgraphs compose');

    const gateway = new ApolloGateway({
      supergraphSdl: composed.supergraphSdl!,
      buildService: ({ url }) =>
        new RemoteGraphQLDataSource<GatewayContext>({
          url,
          willSendRequest({ request, context }) {
            if (context.authorization) request.http?.headers.set('authorization', context.authorization);
          },
        }),
    });
    const router = new ApolloServer<GatewayContext>({ gateway: gateway as any });
    const { url } = await startStandaloneServer(router, {
      listen: { port: 0, host: '127.0.0.1' },
      context: async ({ req }) => ({ authorization: req.headers.authorization }),
    });
    stops.push(() => router.stop());
    gatewayUrl = url.replace(/\/$/, '');
  });

  after(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it('serves its SDL with File and User as entities keyed by id', async () => {
    const { _service } = await files.admin.data(`{ _service { sdl } }`);
    assert.match(_service.sdl, /type File\s+@key\(fields: "id"\)/);
    assert.match(_service.sdl, /type User\s+@key\(fields: "id"\)/);
  });

  it('answers a query through the gateway that joins both subgraphs, both ways', async () => {
    const router = GraphQLClient.for(gatewayUrl).withToken(files.admin.token);
    const { reviews } = await router.data(`{ reviews { body file { name size author { username } } } }`);
    assert.deepEqual(
      reviews.map((r: any) => [r.body, r.file.name, r.file.size, r.file.author.username]),
      [
        ['review of file 0', 'one.txt', 10, 'admin'],
        ['review of file 1', 'two.txt', 10, 'admin'],
      ],
    );
    const { files: page } = await router.data(`{ files(first: 5) { edges { node { name reviews { body } } } } }`);
    const byName = Object.fromEntries(page.edges.map((e: any) => [e.node.name, e.node.reviews.map((r: any) => r.body)]));
    assert.deepEqual(byName, { 'one.txt': ['review of file 0'], 'two.txt': ['review of file 1'] });
  });

  it('still requires a token for entities resolved through the gateway', async () => {
    const anonymous = await GraphQLClient.for(gatewayUrl).request(`{ reviews { file { name } } }`);
    // The files subgraph refuses the entity fetch; the gateway passes its error on, tagged with the subgraph.
    assert.deepEqual(
      anonymous.errors?.map((e) => [e.extensions?.code, e.extensions?.serviceName]),
      [['UNAUTHENTICATED', 'files']],
      JSON.stringify(anonymous.errors),
    );
    assert.equal(anonymous.data, null, 'nothing is joined');
  });
});

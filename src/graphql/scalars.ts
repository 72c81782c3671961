import { GraphQLDateTime, GraphQLSafeInt } from 'graphql-scalars';

/** Byte sizes and offsets: integers up to 2^53-1 (GraphQL's Int stops at 2^31-1). */
export const SafeInt = GraphQLSafeInt;
/** ISO-8601 timestamps. */
export const DateTime = GraphQLDateTime;

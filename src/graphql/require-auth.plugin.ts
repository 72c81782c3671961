import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, Kind, type OperationDefinitionNode } from 'graphql';
import { Errors } from '../errors';
import type { RequestContext } from './context';

/** Root fields anyone may ask for: logging in, introspection, and a federation router reading our SDL. */
const PUBLIC_ROOT_FIELDS = new Set(['login', '__schema', '__type', '__typename', '_service']);

/**
 * API.md puts UNAUTHENTICATED before every other code. graphql-js checks variable values
 * (a fractional offset, say) before any resolver's @Authorized runs, so an operation without a
 * valid token is refused here, as soon as it is known which root fields it asks for.
 */
export const requireAuthentication: ApolloServerPlugin<RequestContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ contextValue, operation }) {
        if (contextValue.user || !operation || onlyPublicFields(operation)) return;
        const refusal = contextValue.authError ?? Errors.unauthenticated();
        throw new GraphQLError(refusal.message, { originalError: refusal, extensions: { code: refusal.graphqlCode, http: { status: 200 } } });
      },
    };
  },
};

function onlyPublicFields(operation: OperationDefinitionNode): boolean {
  return operation.selectionSet.selections.every(
    (selection) => selection.kind === Kind.FIELD && PUBLIC_ROOT_FIELDS.has(selection.name.value),
  );
}

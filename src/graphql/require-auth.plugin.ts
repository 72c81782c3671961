import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, Kind, type OperationDefinitionNode } from 'graphql';
import { AppError, Errors } from '../errors';
import { allows, type Credential } from '../services/credentials';
import type { RequestContext } from './context';
import { scopeFor } from './scopes';

/** Root fields anyone may ask for: logging in, introspection, and a federation router reading our SDL. */
const PUBLIC_ROOT_FIELDS = new Set(['login', '__schema', '__type', '__typename', '_service']);

/**
 * API.md puts UNAUTHENTICATED before every other code. graphql-js checks variable values
 * (a fractional offset, say) before any resolver's @Authorized runs, so an operation without a
 * valid token is refused here, as soon as it is known which root fields it asks for; and so is
 * one whose access token's scopes do not cover every root field it asks for (FORBIDDEN).
 */
export const requireAuthentication: ApolloServerPlugin<RequestContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ contextValue, operation }) {
        if (!operation) return;
        if (contextValue.user) {
          const refusal = outOfScope(contextValue.credential, operation);
          if (refusal) throw asGraphQLError(refusal);
          return;
        }
        if (onlyPublicFields(operation)) return;
        throw asGraphQLError(contextValue.authError ?? Errors.unauthenticated());
      },
    };
  },
};

function onlyPublicFields(operation: OperationDefinitionNode): boolean {
  return operation.selectionSet.selections.every(
    (selection) => selection.kind === Kind.FIELD && PUBLIC_ROOT_FIELDS.has(selection.name.value),
  );
}

function outOfScope(credential: Credential | undefined, operation: OperationDefinitionNode): AppError | undefined {
  if (!credential || credential.kind === 'login') return undefined;
  for (const selection of operation.selectionSet.selections) {
    // Fragments at the root are rare; asking for them needs the widest scope the operation type can need.
    const field = selection.kind === Kind.FIELD ? selection.name.value : '';
    const scope = scopeFor(operation.operation, field);
    if (!allows(credential, scope)) {
      return Errors.forbidden(`This access token's scopes do not include ${scope}, which ${field || 'this operation'} needs.`);
    }
  }
  return undefined;
}

function asGraphQLError(refusal: AppError): GraphQLError {
  return new GraphQLError(refusal.message, { originalError: refusal, extensions: { code: refusal.graphqlCode, http: { status: 200 } } });
}

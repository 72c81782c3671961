import type { AuthChecker } from 'type-graphql';
import { Errors } from '../errors';
import { requireUser, type RequestContext } from './context';

export const ADMIN = 'ADMIN';

/** `@Authorized()` needs a valid token; `@Authorized(ADMIN)` also an admin. */
export const authChecker: AuthChecker<RequestContext> = ({ context }, roles) => {
  const user = requireUser(context);
  if (roles.includes(ADMIN) && !user.isAdmin) throw Errors.forbidden('Only an admin may do this.');
  return true;
};

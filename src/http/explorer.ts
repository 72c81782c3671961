import { Router, type Request } from 'express';
import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * GraphiQL at `GET /graphql` for a browser (GRAPHQL_PLAYGROUND), served entirely from this
 * server: the UMD builds of graphiql, react and react-dom are copied from the pinned
 * devDependencies into dist/explorer/ by `npm run build` (client/scripts/copy-vendor.mjs), so it
 * works offline and under the pages' own CSP (Apollo's Sandbox loads from a CDN, which that CSP
 * blocks and which an offline machine cannot reach). The token goes into its Headers tab.
 */
const ASSET_DIR = path.resolve(__dirname, '../../explorer');
const ASSETS = ['react.production.min.js', 'react-dom.production.min.js', 'graphiql.min.js', 'graphiql.min.css'];
const PREFIX = '/graphql-explorer';

/** What the explorer opens with: log in, then put the token into the Headers tab. */
const EXAMPLE_OPERATION = `# 1. Log in, then put the token into the Headers tab below:
#    { "Authorization": "Bearer <token>" }
mutation Login {
  login(username: "admin", password: "<password>") { token user { username isAdmin } }
}

# 2. Who am I?
query Me {
  me { username isAdmin }
}

# 3. The library, newest first
query Files {
  files(first: 10) {
    totalCount
    edges { node { id name size md5 uploadedAt author { username } downloadUrl } }
  }
}
`;

const DEFAULT_HEADERS = `{
  "Authorization": "Bearer <token>"
}`;

// A classic script, not inline: the CSP allows scripts from this origin only.
const START_SCRIPT = `'use strict';
const settings = JSON.parse(document.getElementById('explorer-settings').textContent);
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({ url: settings.url }),
    defaultQuery: settings.query,
    defaultHeaders: settings.headers,
    defaultEditorToolsVisibility: 'headers',
    isHeadersEditorEnabled: true,
  }),
);
`;

function page(): string {
  // JSON in a data block is never run; "<" escaped so no string in it can close the element.
  const settings = JSON.stringify({ url: '/graphql', query: EXAMPLE_OPERATION, headers: DEFAULT_HEADERS }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>GraphQL explorer</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="${PREFIX}/graphiql.min.css" />
    <style>html, body, #graphiql { height: 100%; margin: 0; }</style>
    <script src="${PREFIX}/react.production.min.js" defer></script>
    <script src="${PREFIX}/react-dom.production.min.js" defer></script>
    <script src="${PREFIX}/graphiql.min.js" defer></script>
    <script src="${PREFIX}/start.js" defer></script>
    <script type="application/json" id="explorer-settings">${settings}</script>
  </head>
  <body>
    <div id="graphiql">Loading…</div>
  </body>
</html>
`;
}

/** A browser's navigation to /graphql, not an API call (Apollo's rule for its landing page). */
function wantsPage(req: Request): boolean {
  return req.accepts(['application/json', 'application/graphql-response+json', 'text/html']) === 'text/html';
}

export function explorerRouter(): Router {
  const missing = ASSETS.filter((file) => !existsSync(path.join(ASSET_DIR, file)));
  if (missing.length > 0) {
    throw new Error(`GRAPHQL_PLAYGROUND: the explorer's files are missing from ${ASSET_DIR} (${missing.join(', ')}): run \`npm run build\``);
  }
  const html = page();
  const router = Router();
  router.get('/graphql', (req, res, next) => {
    if (!wantsPage(req)) return next();
    res.type('html').setHeader('Cache-Control', 'no-cache');
    res.send(html);
  });
  router.get(`${PREFIX}/start.js`, (_req, res) => {
    res.type('js').setHeader('Cache-Control', 'no-cache');
    res.send(START_SCRIPT);
  });
  for (const file of ASSETS) {
    router.get(`${PREFIX}/${file}`, (_req, res, next) => res.sendFile(path.join(ASSET_DIR, file), { maxAge: '1h' }, (err) => err && next(err)));
  }
  return router;
}

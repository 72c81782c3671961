# The base of both stages (--build-arg NODE_IMAGE=... for a mirror or a local copy).
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

# Build stage: compile TypeScript with the locked dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json mikro-orm.config.ts ./
COPY scripts ./scripts
COPY src ./src
COPY test ./test
COPY client ./client
COPY public ./public
RUN npm run build && npm prune --omit=dev && rm dist/.tsbuildinfo

# Runtime stage: production dependencies and compiled code only, run as an unprivileged user.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production HOST=0.0.0.0 PORT=4000 DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/public ./public
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s \
  CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# --expose-gc: GC pacing (GC_PACE) needs gc(); without it the server runs unpaced.
CMD ["node", "--expose-gc", "dist/src/main.js"]

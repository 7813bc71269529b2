# The buildlite service image: `buildlite serve` (API) and `buildlite worker`.
# Used by compose.yaml; `docker build -t buildlite .` from the repo root.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY core core
COPY builder builder
COPY registry-client registry-client
COPY cache cache
COPY store store
COPY worker worker
COPY api api
COPY cli cli
COPY scripts/bundle.mjs scripts/bundle.mjs
# tsc type-checks and emits dist/; the bin runs the esbuild bundle in dist/bundle.
# Non-TypeScript files the API loads at run time (the .proto) go to dist/api.
RUN node_modules/.bin/tsc -p tsconfig.json \
 && node scripts/bundle.mjs \
 && find api -name '*.proto' -exec cp --parents {} dist/ \; \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# runc runs RUN steps; iproute2 brings up loopback in network=none sandboxes;
# attr (getfattr) reads overlay opaque markers and capabilities when diffing;
# xz-utils and bzip2 unpack ADD archives; ca-certificates for HTTPS registries;
# git (and openssh-client for ssh remotes) fetches git sources; uidmap
# (newuidmap/newgidmap) maps the subordinate ids of a rootless worker.
RUN apt-get update \
 && apt-get install -y --no-install-recommends runc iproute2 attr xz-utils bzip2 ca-certificates git openssh-client uidmap \
 && rm -rf /var/lib/apt/lists/*
# A rootless worker (compose.rootless.yaml) runs as the image's `node` user
# (uid 1000): these subordinate ids are what it maps into its user namespace,
# and the state and store directories are its own (a fresh volume takes the
# owner of the directory it is mounted on). Root, in compose.yaml, is unaffected.
RUN echo 'node:100000:65536' > /etc/subuid \
 && echo 'node:100000:65536' > /etc/subgid \
 && install -d -m 0700 -o node -g node /var/lib/buildlite \
 && install -d -m 0755 -o node -g node /var/lib/buildlite-store
WORKDIR /opt/buildlite
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
RUN printf '#!/bin/sh\nexec node /opt/buildlite/dist/bundle/main.js "$@"\n' > /usr/local/bin/buildlite \
 && chmod 755 /usr/local/bin/buildlite
ENV BUILDLITE_ROOT=/var/lib/buildlite
CMD ["buildlite", "--help"]

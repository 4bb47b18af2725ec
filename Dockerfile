# syntax=docker/dockerfile:1
# The pgmigrate image: `pgmigrate runtime --server URL` (a pool runtime; MigrationRuntime runs it
# on Kubernetes) or any other pgmigrate command. Passwords come only from the environment at run
# time (PGMIGRATE_TARGET_PASSWORD, PGMIGRATE_SOURCE_PASSWORD): no layer holds a secret.
#
#   docker build -t <registry>/pgmigrate:0.1.0 .
#   docker build --build-arg PGDG=true --build-arg PG_CLIENT_PACKAGE=postgresql-client-17 -t … .
#
# The build installs the lockfile's devDependencies, among them the x64-only PostgreSQL servers of
# the tests: on another architecture build with --platform linux/amd64.

# --- build: compile what the package ships (provider/, sdk/), then keep production deps only ---
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no install script may reach the internet (the test servers' and
# @pulumi/kubernetes' would), and `prepare` would build before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.pack.json ./
COPY scripts/prepare.js scripts/copy-sql.js scripts/
COPY provider provider
COPY sdk sdk
# prepare.js is the build `npm pack` and an install from git run: tsconfig.pack.json (provider/
# and sdk/, no tests), then the control store's SQL and the console's assets into dist/.
RUN node scripts/prepare.js \
 && node dist/provider/cli/main.js runtime --help >/dev/null \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime -----------------------------------------------------------------------------------
FROM node:20-bookworm-slim
# The clone runs pg_dump/pg_restore, which must be of the SOURCE server's major version or newer.
# Debian bookworm's postgresql-client is 15. For a newer source add the PostgreSQL project's apt
# repository (PGDG=true) and name the client, e.g. PG_CLIENT_PACKAGE=postgresql-client-17; with
# PGDG=true the plain "postgresql-client" is the newest release.
ARG PG_CLIENT_PACKAGE=postgresql-client
ARG PGDG=false
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    if [ "$PGDG" = true ]; then \
      apt-get install -y --no-install-recommends postgresql-common; \
      /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
    fi; \
    apt-get install -y --no-install-recommends "$PG_CLIENT_PACKAGE"; \
    rm -rf /var/lib/apt/lists/*; \
    pg_dump --version; pg_restore --version
# A fixed numeric UID, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --system --gid 10001 pgmigrate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/pgmigrate --create-home \
      --shell /usr/sbin/nologin pgmigrate
WORKDIR /app
# Owned by root, read-only for the runtime's user.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/provider/control/sql ./provider/control/sql
ENV NODE_ENV=production
USER 10001:10001
ENTRYPOINT ["node", "/app/dist/provider/cli/main.js"]
CMD ["runtime", "--help"]

# The fan-out image: a static Go binary on scratch, run as a numeric non-root
# user, with the dashboard bundle built in the image build (node stage). Build
# from the repository root (the Go workspace):
#
#   docker build -f build/fanout.Dockerfile -t playpulse/fanout:dev \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# `make images` prints these commands for every image.

# The dashboard bundle: npm ci from the lock file, then esbuild (build.mjs),
# exactly what `npm run build` writes into internal/web/dashboard/.
FROM node:24.11.1-bookworm-slim AS ui
WORKDIR /src/services/fanout/internal/web/ui
COPY services/fanout/internal/web/ui/package.json services/fanout/internal/web/ui/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY services/fanout/internal/web/ui/ ./
RUN node build.mjs --out /out/dashboard

FROM golang:1.26.8-trixie AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
# A workspace build needs every module that go.work uses: their go.mod and
# go.sum, and the source of the ones this binary imports.
COPY go.work go.work.su[m] ./
COPY services/collector/go.mod services/collector/go.sum services/collector/
COPY services/playback/go.mod services/playback/go.sum services/playback/
COPY services/producer/go.mod services/producer/go.sum services/producer/
COPY services/fanout/go.mod services/fanout/go.sum services/fanout/
COPY services/controller/go.mod services/controller/go.sum services/controller/
COPY tests/go.mod tests/go.sum tests/
COPY tools/go.mod tools/go.sum tools/
COPY services/playback/ services/playback/
COPY services/fanout/ services/fanout/
# .dockerignore leaves the committed bundle out: the image embeds the one the
# ui stage just built.
COPY --from=ui /out/dashboard/ services/fanout/internal/web/dashboard/
ARG VERSION=dev
ARG REVISION=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X playpulse.dev/services/playback/ops.Version=${VERSION} -X playpulse.dev/services/playback/ops.Revision=${REVISION}" \
      -o /out/fanout ./services/fanout/cmd/fanout

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=""
LABEL org.opencontainers.image.title="Playpulse fan-out" \
      org.opencontainers.image.description="Reads every partition of the playback topics and serves live QoE dashboards over WebSockets" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="scratch"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/fanout /fanout
USER 65532:65532
ENTRYPOINT ["/fanout"]

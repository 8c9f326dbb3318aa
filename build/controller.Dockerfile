# The controller image: a static Go binary on scratch, run as a numeric non-root
# user. Build from the repository root (the Go workspace):
#
#   docker build -f build/controller.Dockerfile -t playpulse/controller:dev \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# `make images` prints these commands for every image.

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
COPY services/controller/ services/controller/
ARG VERSION=dev
ARG REVISION=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X playpulse.dev/services/playback/ops.Version=${VERSION} -X playpulse.dev/services/playback/ops.Revision=${REVISION}" \
      -o /out/controller ./services/controller/cmd/controller

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=""
LABEL org.opencontainers.image.title="Playpulse controller" \
      org.opencontainers.image.description="Reconciles PlaybackStream resources into Strimzi KafkaTopics and producer Deployments" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="scratch"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/controller /controller
USER 65532:65532
ENTRYPOINT ["/controller"]

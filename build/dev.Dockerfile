# The Tilt dev image of any service: the binary Tilt compiled on the host
# (bin/tilt/<service>, GOOS=linux CGO_ENABLED=0) at /app/service, on a small
# base with a shell and tar, which Tilt's live update needs to copy a new
# binary in and restart it (restart_process extension). Never used for
# releases: those are build/<service>.Dockerfile.
FROM busybox:1.37.0
ARG SERVICE
RUN mkdir /app && chown 65532:65532 /app
COPY --chown=65532:65532 ${SERVICE} /app/service
USER 65532:65532
WORKDIR /app
ENTRYPOINT ["/app/service"]

# wsgate container image: a static binary on distroless, run as non-root.
#
#   docker build -t wsgate \
#     --build-arg WSGATE_VERSION=$(git describe --tags --always --dirty) \
#     --build-arg WSGATE_REVISION=$(git rev-parse HEAD) .
#   docker run --rm wsgate version
#
# docker-compose.yml builds it for the demo deployment.

# --- build ---------------------------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# .git is not in the build context, so Go cannot stamp the VCS revision:
# `wsgate version` reports these instead (empty: "devel", and says so).
ARG WSGATE_VERSION=""
ARG WSGATE_REVISION=""
# Static (no cgo), reproducible paths; the module's build info stays in the
# binary for `wsgate version`.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags="-s -w -X main.version=${WSGATE_VERSION} -X main.revision=${WSGATE_REVISION}" \
      -o /out/wsgate ./cmd/wsgate \
 && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/healthcheck ./deploy/healthcheck

# --- run -----------------------------------------------------------------------
# distroless/static: CA certificates, tzdata and /etc/passwd, no shell, no
# package manager. The healthcheck binary stands in for curl in compose's
# health check.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wsgate /usr/local/bin/wsgate
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/wsgate"]
CMD ["serve", "-config", "/etc/wsgate/wsgate.yaml"]

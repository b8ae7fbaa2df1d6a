# syntax=docker/dockerfile:1
# sentinel: a static binary on distroless, non-root.
#   docker build --build-arg VERSION=v0.1.0 --build-arg COMMIT=$(git rev-parse --short HEAD) \
#     -t ghcr.io/kube-sentinel/sentinel:v0.1.0 .
# The build flags are the ones cmd/sentinel's TestBinarySIGTERM builds with
# (-X main.version, -X main.commit), so `sentinel version` prints VERSION.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath \
      -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
      -o /out/sentinel ./cmd/sentinel

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/sentinel /usr/local/bin/sentinel
USER 65532:65532
# OTLP/gRPC, OTLP/HTTP, the web port (API, /metrics, status page).
EXPOSE 4317 4318 9464
ENTRYPOINT ["/usr/local/bin/sentinel", "run"]

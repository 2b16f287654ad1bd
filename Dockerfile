# Build the operator binary: one static binary with the manager and worker
# subcommands (the demo is a binary of its own, not in the image).
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY config/crd/ config/crd/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o user-import-operator ./cmd/user-import-operator

# distroless/static: no shell, no package manager, runs as nonroot (65532).
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/user-import-operator /user-import-operator
USER 65532:65532
ENTRYPOINT ["/user-import-operator"]
CMD ["manager"]

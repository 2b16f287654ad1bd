# user-import-operator

IMG ?= user-import-operator:latest
LOCALBIN ?= $(shell pwd)/bin
CACHE ?= $(HOME)/.cache/user-import-operator
export UIO_CACHE := $(CACHE)
# Tools are built into bin/ by version; the Go build cache makes rebuilds cheap.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
# kustomize v5.8.3 needs Go 1.27; v5.8.2 builds with the Go of go.mod.
KUSTOMIZE_VERSION ?= v5.8.2
HELM_VERSION ?= v3.22.0
GINKGO_VERSION ?= $(shell go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
GINKGO ?= $(LOCALBIN)/ginkgo-$(GINKGO_VERSION)
GOIMPORTS_VERSION ?= $(shell go list -m -f '{{.Version}}' golang.org/x/tools)
GOIMPORTS ?= $(LOCALBIN)/goimports-$(GOIMPORTS_VERSION)
# goimports puts this module's imports in a group of their own, last.
LOCAL_MODULE := github.com/userimport/user-import-operator

# Every build and test with the flags of the operator's image (static,
# paths trimmed): the tests, the image of the e2e suites and the tools
# then share their compiled packages instead of building them twice.
export CGO_ENABLED ?= 0
export GOFLAGS ?= -trimpath

GOTEST_FLAGS ?=
BENCH ?=

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases
	./hack/chart-sync.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: docs
docs: manifests ## Generate the API reference (docs/reference/api.md) from the CRDs.
	go run ./hack/apidocs docs/reference/api.md

.PHONY: verify-generated
verify-generated: manifests generate docs ## Fail when generated files differ from the committed ones.
	@if [ -n "$$(git status --porcelain -- api config/crd config/rbac charts docs/reference)" ]; then \
		git status --short -- api config/crd config/rbac charts docs/reference; git diff -- api config/crd config/rbac charts docs/reference; \
		echo "generated files are stale or not committed: run 'make manifests generate docs' and commit"; exit 1; fi

.PHONY: fmt
fmt: $(GOIMPORTS) ## gofmt, and goimports with this module's imports last.
	go fmt ./...
	$(GOIMPORTS) -w -local $(LOCAL_MODULE) $$(git ls-files '*.go' | grep -v zz_generated)

.PHONY: verify-fmt
verify-fmt: $(GOIMPORTS) ## Fail on a Go file that make fmt would change.
	@out=$$(gofmt -l $$(git ls-files '*.go'); $(GOIMPORTS) -l -local $(LOCAL_MODULE) $$(git ls-files '*.go' | grep -v zz_generated)); \
	if [ -n "$$out" ]; then echo "not formatted (run make fmt):"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet.
	. hack/compile-env.sh && go vet ./...

.PHONY: lint
lint: fmt vet ## Format and vet (golangci-lint is used when it is on PATH).
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; fi

.PHONY: demo
demo: ## Run the operator on this machine: control plane, manager and an SQLite directory; imports 1,000 users.
	KUBEBUILDER_ASSETS="$$(./hack/envtest-assets.sh)" go run ./cmd/user-import-demo $(DEMO_FLAGS)

.PHONY: test
test: manifests generate vet $(HELM) $(KUSTOMIZE) ## Run every test: unit, envtest and real directory servers.
	HELM=$(HELM) KUSTOMIZE=$(KUSTOMIZE) ./hack/test.sh $(GOTEST_FLAGS)

.PHONY: test-e2e
test-e2e: $(KUSTOMIZE) $(HELM) $(GINKGO) ## Run the e2e suite on a local single-node cluster (Linux, root); E2E_REUSE=1 reuses and keeps a running one.
	KUSTOMIZE=$(KUSTOMIZE) GINKGO=$(GINKGO) ./hack/cluster/e2e.sh

.PHONY: test-e2e-chart
test-e2e-chart: $(KUSTOMIZE) $(HELM) $(GINKGO) ## The e2e specs labelled smoke or chart, with the operator installed by the Helm chart.
	KUSTOMIZE=$(KUSTOMIZE) HELM=$(HELM) GINKGO=$(GINKGO) E2E_INSTALL=chart E2E_GINKGO_FLAGS=--label-filter=smoke,chart ./hack/cluster/e2e.sh

N ?= 20000
SEED ?= 0
.PHONY: fuzz-sync
fuzz-sync: ## Compare the engine with the reference model on N random scenarios from SEED (in memory; a tenth of them in SQLite, killed and resumed).
	UIO_REPO_ROOT=$$PWD go test -count=1 -timeout 0 -run 'AgreesWithTheModel' ./internal/engine \
		-model.scenarios=$(N) -model.seed=$(SEED) -model.sql=$$(( $(N) / 10 )) -model.postgres=$$(( $(N) / 100 )) -model.ldap=$$(( $(N) / 100 )) -model.scim=$$(( $(N) / 200 ))

.PHONY: bench
bench: ## Run the benchmarks (BENCH=engine|ldap|ad|scim|mail|postgres|codes|sources|groups|fleet for one); prints BENCH lines.
	./hack/bench.sh $(BENCH)

##@ Build

.PHONY: build
build: ## Build bin/user-import-operator.
	CGO_ENABLED=0 go build -trimpath -o bin/user-import-operator ./cmd/user-import-operator

# PLUGIN_DIR is where install-plugin puts kubectl-usersync: a directory on
# PATH, so that kubectl finds it as `kubectl usersync`.
PLUGIN_DIR ?= /usr/local/bin

.PHONY: install-plugin
install-plugin: ## Build kubectl-usersync into PLUGIN_DIR (default /usr/local/bin): `kubectl usersync`.
	CGO_ENABLED=0 go build -trimpath -o $(PLUGIN_DIR)/kubectl-usersync ./cmd/kubectl-usersync
	@echo "installed $(PLUGIN_DIR)/kubectl-usersync; try: kubectl usersync status -A"

.PHONY: run
run: manifests generate ## Run the manager against the cluster in ~/.kube/config.
	go run ./cmd/user-import-operator manager

.PHONY: docker-build
docker-build: ## Build the image with Docker.
	docker build -t $(IMG) .

.PHONY: build-installer
build-installer: manifests generate $(KUSTOMIZE) ## Write dist/install.yaml (CRDs, RBAC, Deployment).
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml

##@ Tools

$(CONTROLLER_GEN):
	./hack/tool.sh controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen $(CONTROLLER_TOOLS_VERSION) $@

$(HELM):
	./hack/tool.sh helm helm.sh/helm/v3/cmd/helm $(HELM_VERSION) $@

$(KUSTOMIZE):
	./hack/tool.sh kustomize sigs.k8s.io/kustomize/kustomize/v5 $(KUSTOMIZE_VERSION) $@

.PHONY: tools
tools: $(CONTROLLER_GEN) $(KUSTOMIZE) $(HELM) $(GINKGO) $(GOIMPORTS) ## Build the pinned tools into bin/.

$(GINKGO):
	./hack/tool.sh ginkgo github.com/onsi/ginkgo/v2/ginkgo $(GINKGO_VERSION) $@

$(GOIMPORTS):
	./hack/tool.sh goimports golang.org/x/tools/cmd/goimports $(GOIMPORTS_VERSION) $@

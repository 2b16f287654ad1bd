# Sourced by what only compiles (go vet, the builds of the tools, the test
# servers, the control plane and the e2e image), never by what runs
# tests: the compiler spends a good part of its time collecting garbage,
# and fewer collections make a cold build markedly cheaper. The limit
# keeps the largest packages and links within a few GiB.
export GOGC=400 GOMEMLIMIT=3GiB
# The Makefile's build flags, for what starts outside make: what is
# compiled is then what the tests reuse.
export CGO_ENABLED=${CGO_ENABLED:-0} GOFLAGS=${GOFLAGS:--trimpath}

#!/usr/bin/env bash
# Installs OpenSSH's sshd, for the tests of the SFTP source
# (internal/testpeer/sshd starts its own sshd on 127.0.0.1 with a
# generated host key and configuration in a temporary directory; the
# package's own server is neither configured nor left running).
# Idempotent: does nothing when sshd and ssh-keygen are installed.
set -euo pipefail
if [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
if command -v service >/dev/null 2>&1; then
  service ssh stop >/dev/null 2>&1 || true
fi

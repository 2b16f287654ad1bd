#!/usr/bin/env bash
# Installs OpenSSH's sshd, for the tests of the SFTP source
# (internal/testpeer/sshd starts its own sshd on 127.0.0.1 with a
# generated host key and configuration in a temporary directory; the
# package's own server is neither configured nor left running), and the
# account the tests log in as: sshd authenticates system accounts only.
# The account has no shell and reaches nothing but SFTP on that server.
# Idempotent.
set -euo pipefail
if ! [ -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
  if command -v service >/dev/null 2>&1; then
    service ssh stop >/dev/null 2>&1 || true
  fi
fi
# Keep in step with internal/testpeer/sshd.
user=uio-sftp
password=sftp-test-password-5
if ! id "$user" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
fi
echo "$user:$password" | chpasswd

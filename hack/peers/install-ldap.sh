#!/usr/bin/env bash
# Installs OpenLDAP's slapd and the ldap-utils clients (ldapadd, ldapsearch)
# for the tests of the LDAP directory provider. The tests start their own
# slapd on 127.0.0.1 with a configuration in a temporary directory; the
# package's own server is neither configured nor left running.
# Idempotent: does nothing when both are installed.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

if have slapd && have ldapadd && have slapadd; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# no_configuration: the package must not create a database of its own.
echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null

# No systemd here, but a package script may still have started the daemon
# through its init script: stop it so that only the tests' own servers run.
if command -v service >/dev/null 2>&1; then
  service slapd stop >/dev/null 2>&1 || true
fi

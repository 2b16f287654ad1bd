#!/usr/bin/env bash
# Installs Samba's Active Directory domain controller and the ldap-utils
# clients for the tests of the LDAP provider against Active Directory.
# The tests provision their own domain (internal/testpeer/samba) and run
# each DC in a network namespace of its own; the package's own services
# are neither configured nor left running.
# Idempotent: does nothing when all are installed. The schema and setup
# files a provision reads are a package of their own (samba-ad-provision),
# which samba-ad-dc only recommends.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

if have samba && have samba-tool && have ldapsearch && have ip && [ -d /usr/share/samba/setup/ad-schema ]; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends samba samba-ad-dc samba-ad-provision ldap-utils iproute2 >/dev/null

if command -v service >/dev/null 2>&1; then
  for s in samba-ad-dc smbd nmbd winbind; do service "$s" stop >/dev/null 2>&1 || true; done
fi

#!/usr/bin/env bash
# Installs etcd (Debian's etcd-server), the consensus that swarm peers replicate their ledger
# with (see src/fedswarm/swarm/etcd.py), so that the swarm process tests do not skip.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v etcd >/dev/null; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q etcd-server
fi
# The package enables a system service on its default ports; peers start their own members.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  $SUDO systemctl disable --now etcd || true
fi

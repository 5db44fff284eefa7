#!/usr/bin/env bash
# Installs the Debian packages the tests run for real (servers on loopback, Docker engine, image tooling).
# Idempotent: does nothing when every package is already installed.
set -euo pipefail
packages=(
  postgresql redis-server prometheus          # backing services and metrics, started by the tests on 127.0.0.1
  docker.io docker-registry docker-compose    # engine, local registry on 127.0.0.1:5000, compose validation
  debootstrap ca-certificates                 # stand-in base image (Docker Hub is unreachable here)
  gcc libc6-dev libpq-dev python3-dev         # app/requirements.txt builds psycopg's C implementation
  git make
  shellcheck                                  # actionlint checks the workflows' run: scripts with it
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run this script as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these on install; the tests run their own instances on their own ports and data dirs.
for service in postgresql redis-server prometheus docker-registry docker; do
  (service "$service" stop >/dev/null 2>&1 || true)
done

#!/usr/bin/env bash
# Installs the Debian packages the tests run for real (servers on loopback, Docker engine, image tooling).
# Idempotent: does nothing when every package is already installed.
set -euo pipefail
packages=(
  postgresql redis-server prometheus          # backing services and metrics, started by the tests on 127.0.0.1
  docker-registry docker-compose              # local registry on 127.0.0.1:5000, compose validation
  debootstrap ca-certificates                 # stand-in base image (Docker Hub is unreachable here)
  debian-archive-keyring                      # debootstrap verifies bookworm with it (absent on e.g. Ubuntu hosts)
  gcc libc6-dev libpq-dev python3-dev         # app/requirements.txt builds psycopg's C implementation
  python3-venv                                # `make setup`: Debian's python3 has no ensurepip without it
  git make
  shellcheck                                  # actionlint checks the workflows' run: scripts with it
)
# Debian's engine conflicts with Docker's own packages (docker-ce, containerd.io on GitHub's ubuntu runners).
docker_engine_installed() {
  command -v dockerd >/dev/null 2>&1 && return 0
  for package in docker-ce containerd.io; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" && return 0
  done
  return 1
}
docker_engine_installed || packages+=(docker.io)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "missing Debian packages: ${missing[*]} (run this script as root)" >&2
    exit 1
  fi
  as_root=(sudo)  # e.g. GitHub's runners: an unprivileged user with passwordless sudo
fi
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a service when its package is installed; the tests run their own instances on their own ports
# and data dirs. Stop only the ones this run installed: services a developer already had keep running.
declare -A service_of=(
  [postgresql]=postgresql [redis-server]=redis-server [prometheus]=prometheus
  [docker-registry]=docker-registry [docker.io]=docker
)
for package in "${missing[@]}"; do
  service="${service_of[$package]:-}"
  if [ -n "$service" ]; then
    "${as_root[@]}" service "$service" stop >/dev/null 2>&1 || true
  fi
done

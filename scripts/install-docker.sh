#!/usr/bin/env bash
# Make sure a Docker engine and Docker Compose are available, the way SageMaker local mode needs.
# On Debian/Ubuntu with no engine (a fresh machine, CI): installs docker.io, docker-compose and
# debootstrap with apt and starts dockerd in the background. Does nothing when an engine answers.
set -euo pipefail
log() { echo "[install-docker] $*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

if docker info >/dev/null 2>&1; then
    log "Docker engine is running."
else
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null \
        || ! { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; }; then
        command -v apt-get >/dev/null || { log "no apt-get: install Docker Engine and Compose by hand"; exit 1; }
        log "Installing Debian's docker.io, docker-compose and debootstrap with apt ..."
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
    fi
    log "Starting dockerd in the background (log: /var/log/local-mlops-dockerd.log) ..."
    $SUDO sh -c 'nohup dockerd >/var/log/local-mlops-dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not start: see /var/log/local-mlops-dockerd.log"; exit 1; }
    log "Docker engine is running."
fi
if ! command -v debootstrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # Needed to make a base image when no container registry answers.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || true
fi

#!/usr/bin/env bash
# Make a Debian bookworm base image with python3 when no container registry answers:
# debootstrap a minimal root filesystem and `docker import` it.
#   scripts/make-base-image.sh [IMAGE_NAME] [DEBIAN_MIRROR]
# Needs root and debootstrap (apt-get install debootstrap). Takes about a minute.
set -euo pipefail
name="${1:-local-mlops/debian:bookworm}"
mirror="${2:-http://deb.debian.org/debian}"
if docker image inspect "$name" >/dev/null 2>&1; then
    echo "base image $name already exists"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    echo "debootstrap is missing: apt-get install -y debootstrap" >&2
    exit 1
fi
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrapping Debian bookworm (minbase + python3) from $mirror into $rootfs ..."
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
echo "importing it as $name ..."
tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$name" >/dev/null
echo "base image $name ready ($(docker image inspect -f '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1/1e6}'))"

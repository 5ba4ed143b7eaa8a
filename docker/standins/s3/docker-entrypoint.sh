#!/bin/bash
# Entry point of the S3 stand-in: `[minio] server DIR [--console-address ADDR] [--address ADDR]` becomes
# `rclone serve s3 DIR` on the same address with MINIO_ROOT_USER / MINIO_ROOT_PASSWORD as its v4 key pair
# (MinIO's defaults minioadmin / minioadmin when unset), given through rclone's environment (RCLONE_AUTH_KEY, a
# CSV list, hence the quotes), never on its command line; any other command runs as given.
set -euo pipefail
if [ "${1:-}" = "minio" ]; then
    shift
fi
if [ "${1:-}" != "server" ]; then
    exec "$@"
fi
shift
address=":9000"
folder=""
while [ $# -gt 0 ]; do
    case "$1" in
        --address) address="$2"; shift 2 ;;
        --address=*) address="${1#*=}"; shift ;;
        --console-address) shift 2 ;;   # no console
        --console-address=*) shift ;;
        -*) echo "s3 stand-in: ignoring option $1" >&2; shift ;;
        *) folder="${folder:-$1}"; shift ;;
    esac
done
folder="${folder:-/data}"
mkdir -p "$folder"
pair="${MINIO_ROOT_USER:-minioadmin},${MINIO_ROOT_PASSWORD:-minioadmin}"
export RCLONE_AUTH_KEY="\"${pair//\"/\"\"}\""
unset MINIO_ROOT_PASSWORD
# NOTICE: at DEBUG rclone logs the options it read from the environment
exec rclone serve s3 "$folder" \
    --addr "$address" \
    --force-path-style \
    --dir-cache-time 2s \
    --log-level NOTICE \
    --config /dev/null

#!/bin/sh
# The notifyq image's entrypoint: its first argument is the role the container plays.
#
#   docker-entrypoint.sh api [ARG...]        notifyq api --host 0.0.0.0 [ARG...]
#   docker-entrypoint.sh worker [ARG...]     notifyq worker [ARG...]
#   docker-entrypoint.sh applier [ARG...]    notifyq applier [ARG...]
#   docker-entrypoint.sh simulator [ARG...]  notifyq simulator --host 0.0.0.0 [ARG...]
#   docker-entrypoint.sh migrate [ARG...]    notifyq migrate --wait [ARG...]
#   docker-entrypoint.sh healthcheck         the image's HEALTHCHECK: is the role started here healthy?
#
# A role replaces this shell with notifyq (exec), so SIGTERM from `docker stop` or Kubernetes reaches
# notifyq itself, which drains and exits. Before that it writes what its health check is to
# $NOTIFYQ_DATA_DIR/healthcheck: a HEALTHCHECK runs in a process of its own, with the image's environment
# and not the one this script passed on, and so cannot tell the role or the port by itself.
# Operators' one-shot commands go around this script: `docker run --entrypoint notifyq IMAGE status`,
# or `kubectl exec deploy/notifyq-api -- notifyq status`.
set -eu

ROLES="api, worker, applier, simulator, migrate"
DATA_DIR=${NOTIFYQ_DATA_DIR:-/var/lib/notifyq}
HEALTH_FILE="$DATA_DIR/healthcheck"

usage() {
    echo "usage: docker-entrypoint.sh ROLE [ARG...], ROLE one of: $ROLES (or healthcheck)" >&2
    exit 2
}

# The value of the last `--port N` or `--port=N` among the arguments (click takes the last one), or $1.
port_in() {
    port=$1
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --port=*) port=${1#--port=} ;;
            --port) [ $# -gt 1 ] && port=$2 ;;
        esac
        shift
    done
    echo "$port"
}

# Record the health check of this process: its pid (this shell's, which exec keeps) and the URL that
# answers 200 while it is healthy (none: the role serves no HTTP, and being alive is all there is).
note_health() {
    if ! { mkdir -p "$DATA_DIR" && printf 'role=%s\npid=%s\nurl=%s\n' "$1" "$$" "$2" >"$HEALTH_FILE.new" &&
        mv -f "$HEALTH_FILE.new" "$HEALTH_FILE"; } 2>/dev/null; then
        echo "docker-entrypoint.sh: cannot write $HEALTH_FILE: the health check will report unhealthy" >&2
    fi
}

healthcheck() {
    role='' pid='' url=''
    if [ ! -r "$HEALTH_FILE" ]; then
        echo "no $HEALTH_FILE: no role was started by docker-entrypoint.sh with this NOTIFYQ_DATA_DIR" >&2
        exit 1
    fi
    # read as data, never sourced: the file is in a writable directory
    while IFS='=' read -r key value; do
        case $key in
            role) role=$value ;;
            pid) pid=$value ;;
            url) url=$value ;;
        esac
    done <"$HEALTH_FILE"
    case $pid in
        '' | *[!0-9]*)
            echo "$HEALTH_FILE names no process" >&2
            exit 1
            ;;
    esac
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "$role (pid $pid) is not running" >&2
        exit 1
    fi
    if [ -z "$url" ]; then
        echo "$role (pid $pid) is running"
        exit 0
    fi
    exec python3 -c '
import sys
import urllib.request

url = sys.argv[1]
try:
    with urllib.request.urlopen(url, timeout=3) as answer:
        print(url, answer.status)
except Exception as exc:
    sys.exit(f"{url}: {exc}")
' "$url"
}

[ $# -gt 0 ] || usage
role=$1
shift
case $role in
    api)
        note_health api "http://127.0.0.1:$(port_in "${NOTIFYQ_API__PORT:-8080}" "$@")/healthz"
        exec notifyq api --host 0.0.0.0 "$@"
        ;;
    worker)
        note_health worker "http://127.0.0.1:${NOTIFYQ_WORKER__METRICS_PORT:-9108}/healthz"
        # a worker in a container serves /metrics and /healthz to its neighbours unless told otherwise
        export NOTIFYQ_WORKER__METRICS_PORT="${NOTIFYQ_WORKER__METRICS_PORT:-9108}"
        export NOTIFYQ_WORKER__METRICS_HOST="${NOTIFYQ_WORKER__METRICS_HOST:-0.0.0.0}"
        exec notifyq worker "$@"
        ;;
    applier)
        note_health applier "http://127.0.0.1:${NOTIFYQ_APPLIER__METRICS_PORT:-9109}/healthz"
        # as a worker, an applier in a container serves /metrics and /healthz to its neighbours
        export NOTIFYQ_APPLIER__METRICS_PORT="${NOTIFYQ_APPLIER__METRICS_PORT:-9109}"
        export NOTIFYQ_APPLIER__METRICS_HOST="${NOTIFYQ_APPLIER__METRICS_HOST:-0.0.0.0}"
        exec notifyq applier "$@"
        ;;
    simulator)
        note_health simulator "http://127.0.0.1:$(port_in 8099 "$@")/_sim/stats"
        exec notifyq simulator --host 0.0.0.0 "$@"
        ;;
    migrate)
        note_health migrate ""
        exec notifyq migrate --wait "$@"
        ;;
    healthcheck)
        healthcheck
        ;;
    *)
        echo "docker-entrypoint.sh: unknown role '$role': expected one of $ROLES" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# Put the static tunnel-client binary into a container and start it there.
#
#   tunnel-client-inject.sh mount [OPTIONS] [-- DOCKER_RUN_ARGS...]
#       Without DOCKER_RUN_ARGS: print the `docker run` options that bind-mount
#       the binary read-only at /tunnel-client and pass the settings in the
#       environment, for example
#         eval "docker run -d $(tunnel-client-inject.sh mount -r URL -c ID) IMAGE /tunnel-client"
#       With DOCKER_RUN_ARGS: run `docker run OPTIONS DOCKER_RUN_ARGS...`, e.g.
#         tunnel-client-inject.sh mount -r URL -c ID -- -d --name web IMAGE /tunnel-client
#   tunnel-client-inject.sh copy [OPTIONS] CONTAINER [-- AGENT_ARGS...]
#       For a running container: `docker cp BINARY CONTAINER:/tunnel-client`,
#       then `docker exec -d CONTAINER /tunnel-client --runner-url URL
#       --container-id ID --log-level LEVEL AGENT_ARGS...`. The binary is the
#       command itself, so no shell is needed (distroless images work).
#
# Options:
#   -b, --binary PATH        the static binary for the container's architecture
#                            [$TUNNEL_CLIENT_BINARY, else build/x86_64-linux-musl/tunnel-client]
#   -r, --runner-url URL     runner base URL [$RUNNER_URL]
#   -c, --container-id ID    container id the runner knows [$CONTAINER_ID]
#   -l, --log-level LEVEL    [info]
#   -h, --help
# DOCKER names the docker command [docker]. A docker failure is reported with
# docker's own message and exit status; bad usage exits 2.
set -euo pipefail

prog=tunnel-client-inject
top=$(cd "$(dirname "$0")/.." && pwd)
docker=${DOCKER:-docker}

usage() {
	sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
bad_usage() {
	echo "$prog: $*" >&2
	echo "run '$0 --help' for usage" >&2
	exit 2
}
die() {
	echo "$prog: $*" >&2
	exit 1
}

# run_docker WHAT ARGS...: run docker; on failure repeat its message and
# exit with its status.
run_docker() {
	local what=$1 out rc=0
	shift
	out=$("$docker" "$@" 2>&1) || rc=$?
	if [ $rc -ne 0 ]; then
		echo "$prog: $what failed (docker exit status $rc): ${out:-no message}" >&2
		exit $rc
	fi
	if [ -n "$out" ]; then printf '%s\n' "$out"; fi
}

[ $# -gt 0 ] || usage
mode=$1
shift
case $mode in
mount | copy) ;;
-h | --help | help) usage ;;
*) bad_usage "unknown command '$mode' (mount or copy)" ;;
esac

binary=${TUNNEL_CLIENT_BINARY:-$top/build/x86_64-linux-musl/tunnel-client}
runner_url=${RUNNER_URL:-}
container_id=${CONTAINER_ID:-}
log_level=info
container=
rest=()
while [ $# -gt 0 ]; do
	case $1 in
	-b | --binary | -r | --runner-url | -c | --container-id | -l | --log-level)
		[ $# -ge 2 ] || bad_usage "$1 needs a value"
		case $1 in
		-b | --binary) binary=$2 ;;
		-r | --runner-url) runner_url=$2 ;;
		-c | --container-id) container_id=$2 ;;
		-l | --log-level) log_level=$2 ;;
		esac
		shift
		;;
	--binary=*) binary=${1#*=} ;;
	--runner-url=*) runner_url=${1#*=} ;;
	--container-id=*) container_id=${1#*=} ;;
	--log-level=*) log_level=${1#*=} ;;
	-h | --help) usage ;;
	--) shift; rest=("$@"); break ;;
	-*) bad_usage "unknown option '$1'" ;;
	*)
		if [ "$mode" != copy ] || [ -n "$container" ]; then bad_usage "unexpected argument '$1'"; fi
		container=$1
		;;
	esac
	shift
done

[ -n "$runner_url" ] || bad_usage "--runner-url (or RUNNER_URL) is required"
[ -n "$container_id" ] || bad_usage "--container-id (or CONTAINER_ID) is required"
[ "$mode" = mount ] || [ -n "$container" ] || bad_usage "copy needs the name or id of a running CONTAINER"
[ -f "$binary" ] || die "binary '$binary' not found (build it with ./build.sh, or pass --binary)"
[ -x "$binary" ] || die "binary '$binary' is not executable"
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

case $mode in
mount)
	# -v splits its argument at ':'.
	case $binary in *:*) die "binary path '$binary' contains ':', which docker -v cannot mount" ;; esac
	opts=(-v "$binary:/tunnel-client:ro" -e "RUNNER_URL=$runner_url"
		-e "CONTAINER_ID=$container_id" -e "LOG_LEVEL=$log_level")
	if [ ${#rest[@]} -eq 0 ]; then
		printf '%q ' "${opts[@]}" | sed 's/ $//'
		echo
	else
		run_docker "docker run" run "${opts[@]}" "${rest[@]}"
	fi
	;;
copy)
	run_docker "docker cp" cp "$binary" "$container:/tunnel-client"
	run_docker "docker exec" exec -d "$container" /tunnel-client \
		--runner-url "$runner_url" --container-id "$container_id" --log-level "$log_level" "${rest[@]}"
	echo "$prog: started /tunnel-client in $container" >&2
	;;
esac

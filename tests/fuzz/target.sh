# shellcheck shell=bash disable=SC2154
# What run.sh and campaign.sh give a target besides its corpus: the
# sanitizer settings, its dictionary and its input cap. Sourced, with
# $here set to tests/fuzz.

# A smaller quarantine: the whole-program targets allocate large buffers.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

dict_of() {
	case $1 in
	fuzz_agent | fuzz_server | fuzz_parsers) echo "$here/tunnel.dict" ;;
	fuzz_tls_client) echo "$here/tls.dict" ;;
	*) echo "$here/text.dict" ;;
	esac
}

# The libFuzzer options every run of target $1 takes (one per line): the
# whole-program targets read a script, and 4 KiB is plenty (longer ones
# only make each run slower).
options_of() {
	case $1 in fuzz_agent | fuzz_server) echo "-max_len=4096" ;; esac
	echo "-timeout=20"
	echo "-rss_limit_mb=3072"
	echo "-print_final_stats=1"
	echo "-dict=$(dict_of "$1")"
}

#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   ./build.sh demo   install what is missing, build, run the main job on the example config
#   ./build.sh test   install what is missing, check the formatting, build, run every test, then again under ASan+UBSan, then the fuzzers
#   ./build.sh format apply .clang-format to every C and C++ file (frozen fixtures excepted)
# Extra arguments after `test` select tests and go to ctest (./build.sh test -L unit, -R '^reliability'): then only the normal build's tests run.
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
PACKAGES=(g++ make cmake pkg-config libboost-dev libboost-filesystem-dev libyaml-cpp-dev
          libcurl4-openssl-dev rapidjson-dev catch2 libsqlite3-dev python3 openssl ca-certificates
          libhowardhinnant-date-dev tzdata
          libsystemd-dev  # sd_notify: serve under systemd's Type=notify
          libssl-dev  # libcrypto's HMAC-SHA256: the signature of webhook notices
          libpq-dev  # libpq: the PostgreSQL state backend
          postgresql  # a real server the tests start on loopback (initdb, pg_ctl)
          dpkg-dev  # dpkg-shlibdeps: the .deb's dependencies, for cpack and its test
          python3-prometheus-client  # its text parser reads serve's /metrics in the tests
          clang clang-format)  # clang: libFuzzer for the fuzz step of `test`

# Installs those of the given Debian packages that are missing.
install_missing() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "Installing: ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The configurations are CMakePresets.json's; -B and CMAKE_ARGS (e.g. a compiler launcher) override them.
build() {
    cmake --preset default -B "$BUILD_DIR" ${CMAKE_ARGS:-} >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)"
}

# `test` runs, after the normal build's tests: the whole suite again built with AddressSanitizer
# and UndefinedBehaviorSanitizer in build-asan/ (any report fails the test that hit it), then
# each libFuzzer target for FUZZ_SECONDS (fuzz/run.sh, clang, build-fuzz/).
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
# Most tests wait on the sandbox (HTTPS on loopback, paced requests) rather than compute, so
# one more test than cores keeps both busy.
TEST_JOBS=${TEST_JOBS:-$(($(nproc) + 1))}
STAGE_TIMES=()
stage() {
    local name=$1 start=$SECONDS
    shift
    echo "== $name"
    "$@"
    STAGE_TIMES+=("$name=$((SECONDS - start))")
}

build_sanitized() {
    cmake --preset asan -B "$ASAN_BUILD_DIR" ${CMAKE_ARGS:-} >/dev/null
    cmake --build "$ASAN_BUILD_DIR" -j"$(nproc)"
}

test_sanitized() {
    # Every process the tests start (segpush, plugins it loads, test programs) inherits these:
    # stop at the first report, leaks included.
    ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:strict_string_checks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        ctest --test-dir "$ASAN_BUILD_DIR" --output-on-failure -j"$TEST_JOBS" "$@"
}

# Every tracked (or new, not ignored) C and C++ file but the frozen ABI headers, which stay
# byte for byte as they were released.
formatted_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard -- '*.c' '*.h' '*.cpp' '*.hpp' ':!:tests/fixtures' |
            while read -r file; do if [ -f "$file" ]; then echo "$file"; fi; done  # not the ones deleted since
    else  # an unpacked archive
        find host plugins plugin-api tests fuzz bench -path tests/fixtures -prune -o \
            -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' \) -print
    fi
}

# The files clang-format would change, each with how many places differ, and the command that
# fixes them. Formatting is clang-format's (Debian 12: version 14); other versions may differ.
check_format() {
    local files output
    mapfile -t files < <(formatted_files)
    output=$(clang-format --dry-run --Werror "${files[@]}" 2>&1) && return
    echo "These files are not formatted as .clang-format says (places that differ, file):"
    sed -nE 's/^([^ :][^:]*):[0-9]+:[0-9]+: error: code should be clang-formatted.*/\1/p' <<<"$output" | sort | uniq -c
    echo "See what differs: clang-format --dry-run FILE; fix them all: ./build.sh format"
    return 1
}

format_tree() {
    local files
    mapfile -t files < <(formatted_files)
    clang-format -i "${files[@]}"
}

# The main job, end to end, without an ActiveCampaign account: the ActiveCampaign sandbox
# (tests/sandbox/ac_sandbox.py, HTTPS on 127.0.0.1 with a certificate made here) stands in for
# the real API, and the example configuration is pointed at it.
run_demo() {
    local demo="$BUILD_DIR/demo"
    rm -rf "$demo" && mkdir -p "$demo"
    openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -days 2 -keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null
    export AC_API_KEY=demo-key-not-a-real-one
    python3 tests/sandbox/ac_sandbox.py --cert "$demo/cert.pem" --key "$demo/key.pem" --port-file "$demo/port" \
        --api-key "$AC_API_KEY" --list 3:Newsletter &
    local sandbox_pid=$!
    trap "kill $sandbox_pid 2>/dev/null" EXIT
    for _ in $(seq 100); do [ -s "$demo/port" ] && break; sleep 0.1; done
    local port
    port=$(cat "$demo/port")
    sed -e "s#^plugin_dir:.*#plugin_dir: $PWD/$BUILD_DIR/plugins#" \
        -e "s#^state:.*#state: state/segpush.db#" \
        -e "s#path: segments/#path: $PWD/config/segments/#" \
        -e "s#^\( *\)host: .*#\1host: 127.0.0.1:$port\n\1ca_bundle: $PWD/$demo/cert.pem#" \
        config/segpush.yaml >"$demo/segpush.yaml"
    local segpush=("$BUILD_DIR/segpush" --config "$demo/segpush.yaml")
    # One person in the sample segment unsubscribed from the newsletter earlier, through an
    # email's link: the export leaves them off the list and reports them suppressed.
    sandbox_request "$port" "$demo/cert.pem" POST /__sandbox/unsubscribe \
        '{"email": "tim.perlman2@example.com", "list": "3", "via": "campaign"}' >/dev/null
    set -x
    "${segpush[@]}" config check
    "${segpush[@]}" plugins list
    # The sample segment holds a row without a valid email, to show the report: every run that
    # reads it ends succeeded_with_rejections, exit status 3.
    expect_exit 3 "${segpush[@]}" export run vip_to_newsletter --dry-run
    expect_exit 3 "${segpush[@]}" export run vip_to_newsletter
    expect_exit 3 "${segpush[@]}" export run vip_to_newsletter   # nothing changed: nothing is sent
    "${segpush[@]}" runs list
    cat "$demo"/state/reports/vip_to_newsletter-run-2-report.csv   # rows not sent, and why
    { set +x; } 2>/dev/null
    sandbox_request "$port" "$demo/cert.pem" GET /__sandbox/lists/3/members >"$demo/members.json"
    python3 - "$demo/members.json" <<'PY'
import json, sys
members = json.load(open(sys.argv[1]))
count = lambda status: sum(m["status"] == status for m in members)
print(f"The sandbox's list 3 now holds {count('subscribed')} subscribed contacts "
      f"and {count('unsubscribed')} who unsubscribed.")
PY
}

# Runs the command after STATUS and fails unless it exits with STATUS.
expect_exit() {
    local expected=$1 status=0
    shift
    "$@" || status=$?
    if [ "$status" -ne "$expected" ]; then
        echo "build.sh: '$*' exited with status $status, expected $expected" >&2
        return 1
    fi
}

# METHOD PATH [JSON] on the sandbox's control API; prints the answer.
sandbox_request() {
    python3 - "$@" <<'PY'
import ssl, sys, urllib.request
port, cert, method, path = sys.argv[1:5]
body = sys.argv[5].encode() if len(sys.argv) > 5 else None
request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(request, context=ssl.create_default_context(cafile=cert)).read().decode())
PY
}

case "${1:-}" in
    demo)
        install_missing "${PACKAGES[@]}"
        build
        run_demo
        ;;
    test)
        shift
        install_missing "${PACKAGES[@]}"
        stage format check_format
        stage build build
        stage tests ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$TEST_JOBS" "$@"
        # A selection of tests (-L unit, -R ...) is a quick loop while working: the sanitizer
        # build and the fuzzers belong to the whole run, which CI makes.
        if [ $# -eq 0 ]; then
            stage sanitizer-build build_sanitized
            stage sanitizer-tests test_sanitized
            stage fuzz fuzz/run.sh "$FUZZ_SECONDS"
        else
            echo "== sanitizer-build, sanitizer-tests, fuzz: skipped for a selection of tests (./build.sh test without arguments runs them)"
        fi
        echo "Stage times (s): ${STAGE_TIMES[*]}"
        ;;
    format)
        install_missing clang-format
        format_tree
        ;;
    *)
        sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac

#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   ./build.sh demo   install what is missing, build, run the main job on the example config
#   ./build.sh test   install what is missing, build, run every test
# Extra arguments after `test` go to ctest (e.g. ./build.sh test -R config).
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
PACKAGES=(g++ make cmake pkg-config libboost-dev libboost-filesystem-dev libyaml-cpp-dev
          libcurl4-openssl-dev rapidjson-dev catch2 libsqlite3-dev python3 openssl ca-certificates)

install_missing() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "Installing: ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)"
}

case "${1:-}" in
    demo)
        install_missing
        build
        # The example config takes its key from AC_API_KEY; a placeholder is enough to check it.
        export AC_API_KEY=${AC_API_KEY:-placeholder-key-for-the-demo}
        "$BUILD_DIR"/segpush --config config/segpush.yaml config check
        "$BUILD_DIR"/segpush --config config/segpush.yaml plugins list
        "$BUILD_DIR"/segpush --config config/segpush.yaml plugins describe activecampaign
        ;;
    test)
        shift
        install_missing
        build
        ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" "$@"
        ;;
    *)
        sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac

#!/bin/sh
# Install localchat into its own virtual environment with a llama.cpp build
# that fits this machine:
#   NVIDIA GPU (nvidia-smi works)  -> CUDA build   CMAKE_ARGS="-DGGML_CUDA=on ..."
#   Apple Silicon                  -> Metal build  (plain install; Metal is forced on)
#   anything else                  -> portable CPU CMAKE_ARGS="-DGGML_NATIVE=OFF"
# The CPU build is portable on purpose: many VMs advertise AMX but forbid it, and
# a default (-march=native) build dies there with SIGILL at the first decode.
#
# Usage: sh packaging/install.sh [--dry-run] [--venv DIR] [--python PY]
#                                [--cpu|--cuda|--metal] [--cuda-wheel cu124 --llama-version V]
#                                [--source SPEC]
# See packaging/README.md.
set -eu

DRY_RUN=0
VENV_DIR="${LOCALCHAT_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/localchat/venv}"
PYTHON="${PYTHON:-}"
FLAVOUR=""
CUDA_WHEEL=""
LLAMA_VERSION=""
LLAMA_SPEC="llama-cpp-python>=0.3.30,<0.4"
WHEEL_INDEX_BASE="https://abetlen.github.io/llama-cpp-python/whl"
SCRIPT_DIR=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
if [ -f "$SCRIPT_DIR/../pyproject.toml" ]; then
    SOURCE=$(CDPATH= cd -- "$SCRIPT_DIR/.." && pwd)
else
    SOURCE="localchat"
fi

say() { printf '%s\n' "localchat-install: $*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    if [ "${1:-0}" -eq 0 ]; then
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    else
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    fi
    exit "${1:-0}"
}

# Print a command (shell-quoted enough to copy) and run it unless --dry-run.
run() {
    printf '+'
    for arg in "$@"; do
        case "$arg" in
            *[!A-Za-z0-9_./=:,+-]*) printf " '%s'" "$arg" ;;
            *) printf ' %s' "$arg" ;;
        esac
    done
    printf '\n'
    if [ "$DRY_RUN" -eq 0 ]; then
        "$@"
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --venv) shift; VENV_DIR="${1:?--venv needs a directory}" ;;
        --python) shift; PYTHON="${1:?--python needs an interpreter}" ;;
        --cpu) FLAVOUR=cpu ;;
        --cuda) FLAVOUR=cuda ;;
        --metal) FLAVOUR=metal ;;
        --cuda-wheel) shift; CUDA_WHEEL="${1:?--cuda-wheel needs a tag such as cu124}"; FLAVOUR=cuda ;;
        --llama-version) shift; LLAMA_VERSION="${1:?--llama-version needs a version}" ;;
        --source) shift; SOURCE="${1:?--source needs a path or requirement}" ;;
        -h|--help) usage 0 ;;
        *) say "unknown option: $1"; usage 2 ;;
    esac
    shift
done

find_python() {
    for candidate in $PYTHON python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

nvidia_gpu_works() {
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '
}

nvidia_gpu_on_bus() {
    [ -e /proc/driver/nvidia/version ] && return 0
    for vendor in /sys/bus/pci/devices/*/vendor; do
        [ -r "$vendor" ] && [ "$(cat "$vendor")" = "0x10de" ] && return 0
    done
    return 1
}

detect_flavour() {
    if [ "$(uname -s)" = "Darwin" ] && [ "$(uname -m)" = "arm64" ]; then
        echo metal
    elif nvidia_gpu_works; then
        echo cuda
    else
        if nvidia_gpu_on_bus; then
            say "an NVIDIA GPU is present but nvidia-smi does not work: install the driver,"
            say "then run this script again for a CUDA build. Installing the CPU build now."
        fi
        echo cpu
    fi
}

PY=$(find_python) || die "Python >= 3.11 not found (pass --python PATH)"
[ -n "$FLAVOUR" ] || FLAVOUR=$(detect_flavour)

CMAKE_ARGS_VALUE=""
case "$FLAVOUR" in
    cpu) CMAKE_ARGS_VALUE="-DGGML_NATIVE=OFF" ;;
    cuda)
        CMAKE_ARGS_VALUE="-DGGML_CUDA=on"
        if [ -z "$CUDA_WHEEL" ]; then
            if nvidia_gpu_works; then
                CMAKE_ARGS_VALUE="$CMAKE_ARGS_VALUE -DCMAKE_CUDA_ARCHITECTURES=native"
            fi
            command -v nvcc >/dev/null 2>&1 ||
                say "warning: nvcc not on PATH; the CUDA build needs the CUDA toolkit" \
                    "(or use --cuda-wheel cu124 --llama-version V for a prebuilt wheel)"
        fi
        ;;
    metal) CMAKE_ARGS_VALUE="" ;;  # llama-cpp-python turns Metal on by itself on Apple Silicon
    *) die "unknown build flavour: $FLAVOUR" ;;
esac

say "python: $PY"
say "venv: $VENV_DIR"
if [ -n "$CUDA_WHEEL" ]; then
    say "llama.cpp build: prebuilt $CUDA_WHEEL wheel from $WHEEL_INDEX_BASE/$CUDA_WHEEL"
else
    say "llama.cpp build: $FLAVOUR${CMAKE_ARGS_VALUE:+ (CMAKE_ARGS=\"$CMAKE_ARGS_VALUE\")}"
fi
say "localchat from: $SOURCE"
[ "$DRY_RUN" -eq 1 ] && say "dry run: printing the commands, running none"

if [ "$FLAVOUR" != "metal" ] && [ -z "$CUDA_WHEEL" ]; then
    command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || command -v clang >/dev/null 2>&1 ||
        say "warning: no C compiler found; building llama-cpp-python needs one (and C++)"
fi

VPY="$VENV_DIR/bin/python"
if [ ! -x "$VPY" ]; then
    run "$PY" -m venv "$VENV_DIR"
fi
run "$VPY" -m pip install --upgrade pip

if [ -n "$CUDA_WHEEL" ]; then
    [ -n "$LLAMA_VERSION" ] || die "--cuda-wheel needs --llama-version (a version the index has)"
    run "$VPY" -m pip install --upgrade --force-reinstall --no-cache-dir \
        --only-binary=llama-cpp-python --extra-index-url "$WHEEL_INDEX_BASE/$CUDA_WHEEL" \
        "llama-cpp-python==$LLAMA_VERSION"
else
    spec="$LLAMA_SPEC"
    [ -z "$LLAMA_VERSION" ] || spec="llama-cpp-python==$LLAMA_VERSION"
    run env "CMAKE_ARGS=$CMAKE_ARGS_VALUE" "$VPY" -m pip install --upgrade --force-reinstall \
        --no-cache-dir "$spec"
fi
run "$VPY" -m pip install "$SOURCE"
run "$VENV_DIR/bin/localchat" doctor || say "doctor found problems; see the lines above"

if [ "$DRY_RUN" -eq 1 ]; then
    say "dry run finished; nothing was changed"
else
    say "done: run $VENV_DIR/bin/localchat (or add $VENV_DIR/bin to PATH)"
fi

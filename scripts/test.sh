#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root:
#   scripts/test.sh                 install what is missing (Samba 4.22 AD DC from bookworm-backports, Chromium,
#                                   systemd-analyze), build once, run every test
#   scripts/test.sh --install-only  only install the system packages
#   scripts/test.sh -- ARGS         extra arguments for the test runner (e.g. a test name filter)
#
# Integration tests start real servers: one Samba AD DC per test on its own 127.0.0.N, cloned from a template
# that is provisioned and seeded once and cached under target/lab/, and the local tenant on 127.0.0.1:0.
set -euo pipefail
cd "$(dirname "$0")/.."

install_only=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --install-only) install_only=1 ;;
    --) shift; extra=("$@"); break ;;
    *) extra+=("$1") ;;
  esac
  shift
done

need_pkgs=()
# The lab runs Samba 4.22 from bookworm-backports (gMSA needs 4.21+): a machine with the stock 4.17 is upgraded;
# libfaketime (package faketime) ages gMSA passwords in the rotation test. lab.sh install brings both.
samba_ok() {
  command -v samba >/dev/null 2>&1 && command -v samba-tool >/dev/null 2>&1 && command -v ldapsearch >/dev/null 2>&1 &&
    [ -r /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] &&
    samba --version | awk '{ split($2, v, "."); exit !(v[1] > 4 || (v[1] == 4 && v[2] >= 21)) }'
}
samba_ok || need_pkgs+=(samba)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing (or Samba older than 4.21) ${need_pkgs[*]}; run as root (or install them: scripts/lab.sh install; apt-get install chromium)" >&2
    exit 1
  fi
  for p in "${need_pkgs[@]}"; do
    case "$p" in
      samba) scripts/lab.sh install ;;
      chromium|systemd)
        export DEBIAN_FRONTEND=noninteractive
        ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq
        apt-get install -y -qq --no-install-recommends "$p" >/dev/null ;;
    esac
  done
fi
[ "$install_only" = 1 ] && exit 0

export CLOUDSYNC_ARTIFACTS=${CLOUDSYNC_ARTIFACTS:-$PWD/target/artifacts}
mkdir -p "$CLOUDSYNC_ARTIFACTS"
# Build every test target and the binary the integration tests spawn once, in the dev profile.
cargo build --workspace --tests --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "${extra[@]}"
  # nextest does not run doctests
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast "${extra[@]}"
fi

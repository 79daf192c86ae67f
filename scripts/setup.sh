#!/usr/bin/env bash
# Everything ftx needs to run, build and pass its tests, on a machine with only Node.js and npm:
# Bun (through npm), redis-server (Debian's package, for the shared-index tests) and the locked
# dependencies. Installs only what is missing; safe to run again. The README's commands and .ci/run
# both start with it.
set -euo pipefail
cd "$(dirname "$0")/.."

BUN_VERSION=1.4.5

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

if ! command -v bun >/dev/null 2>&1 || [ "$(bun --version)" != "$BUN_VERSION" ]; then
  echo "setup: installing bun@$BUN_VERSION (npm)"
  npm install -g "bun@$BUN_VERSION"
  hash -r
fi

# The shared-index tests (test/e2e/shared-index.test.ts) start their own redis-server on a free
# loopback port; they fail, not skip, without one.
if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists yet: fetch them only when the first attempt needs them.
  $SUDO apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1 ||
    { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends redis-server >/dev/null; }
  command -v redis-server >/dev/null 2>&1 || { echo "setup: redis-server is still not on PATH" >&2; exit 1; }
fi

# The web-view tests (test/e2e/web-view.test.ts) drive Debian's Chromium headless through
# puppeteer-core (no browser download of its own); they fail, not skip, without one.
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
    { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
  command -v chromium >/dev/null 2>&1 || { echo "setup: chromium is still not on PATH" >&2; exit 1; }
fi

# The transfer's datagram sealing uses OpenSSL's libcrypto through bun:ffi (src/crypto/aes-gcm-native.ts;
# without it, node:crypto's AES-GCM at about twice the CPU per datagram), and its unit test requires it.
# Debian 12 calls the package libssl3, Debian 13 libssl3t64. (ldconfig is in /sbin, off a user's PATH;
# grep without -q reads to the end, so pipefail never sees ldconfig die of SIGPIPE.)
has_libcrypto3() { "$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | grep 'libcrypto\.so\.3 ' >/dev/null; }
if ! has_libcrypto3; then
  echo "setup: installing libssl3 (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  install_libssl3() { $SUDO apt-get install -y --no-install-recommends libssl3 >/dev/null 2>&1 || $SUDO apt-get install -y --no-install-recommends libssl3t64 >/dev/null 2>&1; }
  install_libssl3 || { $SUDO apt-get update >/dev/null && install_libssl3; }
  has_libcrypto3 || { echo "setup: libcrypto.so.3 is still not installed" >&2; exit 1; }
fi

bun install --frozen-lockfile
echo "setup: bun $(bun --version), $(redis-server --version | cut -d' ' -f1-3), $(chromium --version 2>/dev/null | head -1)"

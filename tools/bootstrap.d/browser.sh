#!/usr/bin/env bash
# Debian's Chromium for the browser tests of Havel's local web pages (tests/support/browser.py drives it with
# playwright-core from tools/npm, by its executable path: Playwright's own browser download is not possible
# on a closed network). Installed when missing and root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing chromium"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
else
    echo "bootstrap: missing chromium (install it with apt-get as root; the browser tests skip without it)" >&2
fi

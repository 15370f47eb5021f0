# Sourced by run_tests.sh: tests/pipeline/report/test_page.py renders report.html in headless Chromium
# (Debian's `chromium` package). Installs it when missing and we are root with apt-get;
# otherwise says in one line how to install it (the test then fails with the same hint).
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing chromium (headless browser for the report test)" >&2
    _apt() { DEBIAN_FRONTEND=noninteractive apt-get "$@" -qq >/dev/null 2>&1; }
    # The package lists may be missing or stale: update once when the first attempt fails.
    if ! _apt install -y --no-install-recommends chromium; then
      _apt update && _apt install -y --no-install-recommends chromium \
        || echo "Could not install chromium with apt-get; the report test will fail until it is installed" >&2
    fi
    unset -f _apt
  else
    echo "chromium is not installed; the report test needs it: sudo apt-get install --no-install-recommends chromium" >&2
  fi
fi

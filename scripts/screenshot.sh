#!/usr/bin/env bash
# Renders the morning report of the "failures" fixture history in headless
# Chromium and saves it as docs/morning-report.png, to look at the layout.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "installing chromium (apt)" >&2; apt-get install -y -q chromium >/dev/null; }
RUNBOOKD_TEST_CHROMIUM=$(command -v chromium) RUNBOOKD_SCREENSHOT_TO=$PWD/docs/morning-report.png \
  cargo test --features integration --test report -- the_html_renders_in_headless_chromium
echo "docs/morning-report.png"

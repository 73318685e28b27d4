#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser test (tests/test_dashboard_browser.py
# drives it with Playwright's executable_path; no `playwright install` download).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi

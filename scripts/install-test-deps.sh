#!/usr/bin/env bash
# Installs the distribution packages and Python tools the test suite starts for real
# (reference resolvers, validators, ...). Run by the README's test command and by .ci/run,
# so a fresh machine gets them; a machine that has them all installs nothing.
#
# A test whose tool is still missing fails naming the package (tests/support/tools.rs); it
# never skips. Add a line to DEBIAN or PYTHON below when a test starts a new tool.
set -euo pipefail

# "command-on-PATH package" pairs, one per Debian package.
DEBIAN=(
  "unbound unbound"
  "dig dnsutils"
  "named-checkzone bind9-utils"
  "fstrm_capture fstrm-bin"
  "dnstap-ldns dnstap-ldns"
  "rsyslogd rsyslog"
  # Identity sources (issue 15): RADIUS accounting from radclient; real DHCP servers writing
  # the lease files poolguard follows, with perfdhcp playing the clients.
  "radclient freeradius-utils"
  "kea-dhcp4 kea-dhcp4-server"
  "perfdhcp kea-admin"
  "dhcpd isc-dhcp-server"
  # Network namespaces and veth pairs for the DHCP tests.
  "ip iproute2"
  "openssl openssl"
  # DoT/DoH clients for tests/dns_encrypted.rs (kdig +tls/+https, curl --doh-url).
  "kdig knot-dnsutils"
  "curl curl"
  # The crate-layer check (scripts/check-layers.py) and the Python validators below.
  "python3 python3"
  "pip3 python3-pip"
  # PostgreSQL's server programs live in a versioned directory, off PATH (tests/common/postgres.rs).
  "/usr/lib/postgresql/*/bin/initdb postgresql"
  # The written report printed to PDF by a real browser (tests/incidents_report.rs): chromium
  # renders, poppler reads the page size and the text layer back, and a CJK font gives the
  # zh-CN headings real glyphs (checked as a file: a font is not a command).
  "chromium chromium"
  # The staff console driven through WebDriver (tests/console_browser.rs).
  "chromedriver chromium-driver"
  "pdftotext poppler-utils"
  "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc fonts-wqy-zenhei"
  # Not a command: rsyslog's TLS driver (a glob, checked as a file).
  "/usr/lib/*/rsyslog/lmnsd_gtls.so rsyslog-gnutls"
)

# "python-module pip-package" pairs (PyPI), for validators with no Debian package.
PYTHON=(
  "openapi_spec_validator openapi-spec-validator"
  # The SMTP server the email alerts are delivered to (tests/alerts_email.rs): STARTTLS and
  # AUTH against a test CA, on loopback.
  "aiosmtpd aiosmtpd"
)

need_apt=()
for pair in "${DEBIAN[@]}"; do
  read -r cmd pkg <<<"$pair"
  # sbin tools (unbound, kea-dhcp4, ...) are not on a normal user's PATH.
  if [[ "$cmd" == /* ]]; then
    # shellcheck disable=SC2086 # the glob is meant to expand
    compgen -G "$cmd" >/dev/null || need_apt+=("$pkg")
    continue
  fi
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    need_apt+=("$pkg")
  fi
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

need_pip=()
for pair in "${PYTHON[@]+"${PYTHON[@]}"}"; do
  read -r module pkg <<<"$pair"
  python3 -c "import $module" >/dev/null 2>&1 || need_pip+=("$pkg")
done
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "== installing Python packages: ${need_pip[*]}"
  python3 -m pip install --quiet "${need_pip[@]}"
fi

#!/usr/bin/env bash
# download.sh - fetch one URL to a file with retries, WITHOUT ever printing the URL.
#
# The MUSA toolkit, muDNN, MCCL and wheel URLs used by the torch_musa images are
# secrets (they carry access tokens or point at unreleased builds). This helper is
# the only place in dockerfiles/ that touches them, and it keeps them out of:
#   * its own output and error messages (it names the download by --what, the
#     secret id or the variable name, never by URL);
#   * the process table (the URL reaches curl on stdin as a config file, `-K -`,
#     not as an argument);
#   * curl's own error messages (curl runs with --silent and no --show-error; this
#     script turns curl's exit code and the HTTP status into its own message).
#
# Where the URL comes from, first non-empty wins:
#   1. --secret NAME : the file /run/secrets/NAME (BuildKit `RUN --mount=type=secret,id=NAME`);
#                      only its first line is used, surrounding whitespace is stripped.
#   2. --env VAR     : the environment variable VAR (a Dockerfile ARG is one inside RUN).
#   3. --url URL     : a URL on the command line - only for NON-secret URLs (a public
#                      installer), since the command line is visible in `ps` and in
#                      `docker history`.
# --secret-dir DIR changes /run/secrets (tests use it).
#
# Output: either -o FILE (exact path) or --output-dir DIR, which keeps the file name
# from the URL's path (query and fragment removed); wheels need this because pip
# reads the Python/ABI tags from the file name. The file name - never the rest of
# the URL - is printed in that mode.
#
# Idempotent: the file is downloaded to a temporary name next to the target and
# renamed into place only after a complete, verified download; with -o and --sha256,
# an existing target with the right checksum is kept without downloading again.
#
# Usage:
#   download.sh [--secret NAME] [--env VAR] [--url URL] (-o FILE | --output-dir DIR)
#               [--what LABEL] [--sha256 HEX] [--retries N] [--optional]
#
#   --what LABEL   name used in messages (default: the secret id or variable name)
#   --sha256 HEX   verify the download (a mismatch fails and removes the file)
#                  (without it: the entry for --env VAR in $PACKAGE_SHA256S, if any)
#   --retries N    attempts in all (default 5; MUSAFARM_DOWNLOAD_RETRIES overrides the default)
#   --optional     when no URL is configured, exit 0 without creating anything
#
# Environment:
#   PACKAGE_SHA256S               the package set's digests (`musafarm submit --package-set`,
#                                 the Dockerfiles' ARG of that name): "VAR=HEX" words separated
#                                 by spaces or commas, VAR the URL's variable (--env), e.g.
#                                 "MUSA_TOOLKITS_URL=ab12... MUDNN_URL=cd34..."; the download of
#                                 VAR must have that sha256 or the step fails naming it (--what).
#   MUSAFARM_DOWNLOAD_INSECURE=1  skip TLS verification (curl -k); a warning is printed.
#                                 Prefer CURL_CA_BUNDLE=/path/ca.pem for an internal CA.
#   HTTPS_PROXY / NO_PROXY / CURL_CA_BUNDLE  honoured by curl as usual.
#
# Exit codes: 0 done (or skipped with --optional), 2 usage error, 3 no URL configured,
#             4 download failed, 5 checksum mismatch or bad file name.
set -euo pipefail
set +x # never trace: a trace would print the URL

prog=download.sh
die() {
  local code=$1
  shift
  printf '%s: error: %s\n' "$prog" "$*" >&2
  exit "$code"
}
log() { printf '%s: %s\n' "$prog" "$*" >&2; }

secret=""
env_var=""
url_arg=""
out=""
out_dir=""
what=""
sha256=""
retries="${MUSAFARM_DOWNLOAD_RETRIES:-5}"
optional=0
secret_dir=/run/secrets

need_arg() { [[ $# -ge 2 && -n "$2" ]] || die 2 "option $1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --secret) need_arg "$@"; secret=$2; shift 2 ;;
    --env) need_arg "$@"; env_var=$2; shift 2 ;;
    --url) need_arg "$@"; url_arg=$2; shift 2 ;;
    -o | --output) need_arg "$@"; out=$2; shift 2 ;;
    --output-dir) need_arg "$@"; out_dir=$2; shift 2 ;;
    --what) need_arg "$@"; what=$2; shift 2 ;;
    --sha256) need_arg "$@"; sha256=$2; shift 2 ;;
    --retries) need_arg "$@"; retries=$2; shift 2 ;;
    --secret-dir) need_arg "$@"; secret_dir=$2; shift 2 ;;
    --optional) optional=1; shift ;;
    -h | --help) sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die 2 "unknown argument (see --help)" ;; # the argument itself could be a URL: not echoed
  esac
done

[[ -n "$secret" || -n "$env_var" || -n "$url_arg" ]] || die 2 "give at least one of --secret, --env, --url"
[[ -n "$out" && -z "$out_dir" || -z "$out" && -n "$out_dir" ]] || die 2 "give exactly one of -o FILE and --output-dir DIR"
[[ "$retries" =~ ^[1-9][0-9]*$ ]] || die 2 "--retries must be a positive integer"
if [[ -n "$env_var" && ! "$env_var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
  die 2 "--env takes a variable name, not a value"
fi
if [[ -n "$secret" && ! "$secret" =~ ^[A-Za-z0-9._-]+$ ]]; then
  die 2 "--secret takes a secret id ([A-Za-z0-9._-]+)"
fi
# The package set's digest of this download (its variable's entry).
if [[ -z "$sha256" && -n "$env_var" && -n "${PACKAGE_SHA256S:-}" ]]; then
  for entry in ${PACKAGE_SHA256S//,/ }; do
    [[ "$entry" == *=* ]] || die 2 "PACKAGE_SHA256S: '$entry' is not VAR=SHA256"
    if [[ "${entry%%=*}" == "$env_var" ]]; then sha256=${entry#*=}; fi
  done
  [[ -z "$sha256" || "${sha256,,}" =~ ^[0-9a-f]{64}$ ]] ||
    die 2 "PACKAGE_SHA256S: the sha256 of $env_var must be 64 hex digits"
fi
if [[ -n "$sha256" ]]; then
  sha256=${sha256,,}
  [[ "$sha256" =~ ^[0-9a-f]{64}$ ]] || die 2 "--sha256 must be 64 hex digits"
fi
[[ -n "$what" ]] || what=${secret:-${env_var:-download}}
command -v curl >/dev/null 2>&1 || die 4 "curl is not installed (install_base_deps.sh installs it)"

# --- resolve the URL (never printed) -------------------------------------------
url=""
source_desc=""
if [[ -n "$secret" && -s "$secret_dir/$secret" ]]; then
  IFS= read -r url <"$secret_dir/$secret" || true # a file without a final newline still counts
  source_desc="secret '$secret'"
fi
url=$(printf '%s' "$url" | tr -d '\r' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
if [[ -z "$url" && -n "$env_var" ]]; then
  url=${!env_var:-}
  url=$(printf '%s' "$url" | tr -d '\r\n' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
  source_desc="variable $env_var"
fi
if [[ -z "$url" && -n "$url_arg" ]]; then
  url=$url_arg
  source_desc="--url"
fi
if [[ -z "$url" ]]; then
  if [[ $optional -eq 1 ]]; then
    log "$what: no URL configured; skipped (optional)"
    exit 0
  fi
  hint=""
  [[ -n "$secret" ]] && hint="the BuildKit secret '$secret' (docker build --secret id=$secret,...)"
  [[ -n "$env_var" ]] && hint="${hint:+$hint or }the build arg $env_var"
  die 3 "$what: no URL configured; set ${hint:-a URL}"
fi
case "$url" in
  http://* | https://* | ftp://* | file://*) ;;
  *) die 2 "$what: the URL from $source_desc is not http(s)://, ftp:// or file://" ;;
esac

# --- where it goes ---------------------------------------------------------------
if [[ -n "$out_dir" ]]; then
  path_part=${url%%[?#]*}
  name=${path_part##*/}
  [[ -n "$name" && "$name" != "." && "$name" != ".." && ! "$name" =~ [[:space:]/] ]] ||
    die 5 "$what: the URL from $source_desc has no usable file name in its path"
  out="$out_dir/$name"
fi
mkdir -p "$(dirname "$out")"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -n "$sha256" && -s "$out" ]] && [[ "$(sha256_of "$out")" == "$sha256" ]]; then
  log "$what: $(basename "$out") already present with the expected sha256; not downloading"
  exit 0
fi

# --- download ----------------------------------------------------------------
tmp=$(mktemp "$(dirname "$out")/.$(basename "$out").part.XXXXXX")
cfg=""
cleanup() { rm -f "$tmp"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# curl config-file syntax: inside double quotes, backslash and double quote are escaped.
esc=${url//\\/\\\\}
esc=${esc//\"/\\\"}
cfg="url = \"$esc\""

curl_opts=(--silent --location --fail --output "$tmp" --write-out '%{http_code}'
  --connect-timeout 30 --speed-limit 1024 --speed-time 120
  --proto '=http,https,ftp,file' --proto-redir '=http,https,ftp')
if [[ "${MUSAFARM_DOWNLOAD_INSECURE:-0}" == "1" ]]; then
  log "warning: $what: TLS certificate verification is OFF (MUSAFARM_DOWNLOAD_INSECURE=1)"
  curl_opts+=(--insecure)
fi

curl_reason() {
  case "$1" in
    3) echo "malformed URL" ;;
    5) echo "could not resolve the proxy" ;;
    6) echo "could not resolve the host" ;;
    7) echo "could not connect to the host" ;;
    22) echo "HTTP error" ;;
    28) echo "timed out or too slow" ;;
    18) echo "transfer ended early" ;;
    35 | 60 | 77 | 83 | 90 | 91) echo "TLS error (certificate or handshake)" ;;
    37) echo "could not read the file:// path" ;;
    47) echo "too many redirects" ;;
    52) echo "empty reply from server" ;;
    55 | 56) echo "network send/receive failure" ;;
    *) echo "curl exit code $1" ;;
  esac
}

log "$what: downloading from $source_desc"
attempt=1
delay=5
while :; do
  rc=0
  http_code=$(printf '%s\n' "$cfg" | curl "${curl_opts[@]}" --config - 2>/dev/null) || rc=$?
  if [[ $rc -eq 0 ]]; then
    break
  fi
  reason=$(curl_reason "$rc")
  [[ "$http_code" =~ ^[0-9]{3}$ && "$http_code" != "000" ]] && reason="$reason, HTTP $http_code"
  # 4xx other than 408/429 will not get better by retrying (wrong URL, expired token).
  permanent=0
  if [[ $rc -eq 3 || $rc -eq 37 ]]; then permanent=1; fi
  if [[ $rc -eq 22 && "$http_code" =~ ^4 && "$http_code" != "408" && "$http_code" != "429" ]]; then permanent=1; fi
  if [[ $permanent -eq 1 || $attempt -ge $retries ]]; then
    die 4 "$what: download failed after $attempt attempt(s): $reason"
  fi
  log "$what: attempt $attempt/$retries failed ($reason); retrying in ${delay}s"
  sleep "$delay"
  attempt=$((attempt + 1))
  delay=$((delay * 2 > 60 ? 60 : delay * 2))
done

[[ -s "$tmp" ]] || die 4 "$what: download produced an empty file"
got=$(sha256_of "$tmp")
if [[ -n "$sha256" && "$got" != "$sha256" ]]; then
  die 5 "$what: sha256 mismatch: expected $sha256, got $got (the file is removed)"
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT INT TERM
size=$(stat -c %s "$out")
log "$what: saved $(basename "$out") ($size bytes, sha256 $got)"

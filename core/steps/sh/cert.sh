# shellcheck shell=bash
# Certificates: cert_info PATH reports `cert` lines "PATH<TAB>field" (notAfter=, serial=, subject=, issuer=,
# DNS names and IP addresses), or "PATH<TAB>missing" / "PATH<TAB>unreadable". served_serial NAME [ADDRESS]: the serial nginx
# hands out on :443 for that name (SNI) at ADDRESS (where visitors reach the host: "$gate_at" of visitorAddress, an IPv6
# one in brackets; 127.0.0.1 when not given): a server block of another file listening on that address itself
# (`listen <address>:443`) takes its connections before the site's `listen 443`. Needs ops_report.
cert_info() {
  local f=$1 out line
  if [ ! -s "$f" ]; then ops_report cert "$f	missing"; return 0; fi
  if ! out=$(openssl x509 -in "$f" -noout -enddate -serial -subject -issuer 2>/dev/null); then ops_report cert "$f	unreadable"; return 0; fi
  out+=$'\n'$(openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null | grep -oE '(DNS|IP Address):[^, ]*' || true)
  while IFS= read -r line; do [ -z "$line" ] || ops_report cert "$f	$line"; done <<< "$out"
}
served_serial() {
  local s
  s=$(echo | /usr/bin/timeout 5 openssl s_client -connect "${2:-127.0.0.1}:443" -servername "$1" 2>/dev/null | openssl x509 -noout -serial 2>/dev/null) || true
  printf '%s' "${s#serial=}"
}
# cert_lacks CERT NAME...: prints the NAMEs (space-separated) the certificate's subjectAltName does not list (DNS names
# and IP addresses, compared in lower case), nothing when it lists them all or is missing (cert_problem says that).
cert_lacks() {
  local f=$1 sans n out=''
  shift
  [ -s "$f" ] || return 0
  sans=$(openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null | grep -oE '(DNS|IP Address):[^, ]*' | sed 's/^[^:]*://' | tr '[:upper:]' '[:lower:]') || true
  for n in "$@"; do grep -qxF -- "$n" <<< "$sans" || out+="${out:+ }$n"; done
  printf '%s' "$out"
}
# cert_beyond CERT NAME...: prints the names the certificate's subjectAltName lists (lower case, space-separated) that
# are none of the NAMEs (a name no longer served: its renewal would fail once its DNS moves), nothing when none or missing.
cert_beyond() {
  local f=$1 sans n want out=''
  shift
  [ -s "$f" ] || return 0
  sans=$(openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null | grep -oE '(DNS|IP Address):[^, ]*' | sed 's/^[^:]*://' | tr '[:upper:]' '[:lower:]') || true
  want=$(printf '%s\n' "$@" | tr '[:upper:]' '[:lower:]')
  while IFS= read -r n; do [ -z "$n" ] || grep -qxF -- "$n" <<< "$want" || out+="${out:+ }$n"; done <<< "$sans"
  printf '%s' "$out"
}
# cert_problem CERT KEY: prints why nginx could not serve this certificate with this key (missing, unreadable, the key
# not the certificate's: replaced by hand), nothing when it can. Public keys compared, as nginx -t does ("key values mismatch").
cert_problem() {
  local c=$1 k=$2 a b
  if [ ! -s "$c" ]; then echo "$c is missing"; return 0; fi
  if [ ! -s "$k" ]; then echo "its private key $k is missing"; return 0; fi
  a=$(openssl x509 -in "$c" -noout -pubkey 2>/dev/null | sha256sum) || a=''
  b=$(openssl pkey -in "$k" -pubout 2>/dev/null | sha256sum) || b=''
  if [ -z "$a" ] || [ "$a" = "$(printf '' | sha256sum)" ]; then echo "$c is not a readable certificate"; return 0; fi
  if [ "$a" != "$b" ]; then echo "its private key $k is not the certificate's (replaced by hand?)"; fi
  return 0
}
# renewal_account_gone DOMAIN: prints the account certbot's renewal configuration for DOMAIN names when its key is no
# longer under /etc/letsencrypt/accounts (removed by hand, a host restored without it): the renewal timer then fails.
renewal_account_gone() {
  local conf=/etc/letsencrypt/renewal/$1.conf id
  [ -f "$conf" ] || return 0
  id=$(sed -n 's/^account *= *//p' "$conf" | head -n1)
  # certbot's account ids are hex; the accounts live under the server's host and directory path (accounts/<host>/<path>/<id>).
  [[ $id =~ ^[0-9a-f]+$ ]] || return 0
  [ -n "$(find /etc/letsencrypt/accounts -path "*/$id/private_key.json" -print -quit 2>/dev/null)" ] || echo "$id"
  return 0
}
# certbot_failure RC LOG DOMAIN SERVER WEBROOT SERVING: says on stderr why certbot failed (its output in LOG, classified),
# what is left serving (SERVING) and what to fix, then the end of certbot's own output. Challenge failures are matched
# first: their detail may name a connection problem of the ACME server's validation, not of this host.
certbot_failure() {
  local rc=$1 log=$2 d=$3 server=$4 webroot=$5 serving=$6 why fix detail failed
  # The names the ACME server could not validate (certbot lists each as "Domain: <name>"): those said, not the lineage's.
  failed=$(sed -n 's/^[[:space:]]*Domain:[[:space:]]*//p' "$log" | sort -u | tr '\n' ' ' || true)
  failed=${failed% }
  detail=$(grep -E '^[[:space:]]*(Type|Detail):' "$log" | sed 's/^[[:space:]]*//' | tr '\n' ' ' | tr -s ' ' | head -c 600 || true)
  detail=${detail% }
  if grep -q 'Another instance of Certbot is already running' "$log"; then
    why="another certbot run on this host (its renewal timer's, certbot.service, or one started by hand) held certbot's lock all the time this run waited"
    fix="see what runs (systemctl status certbot.service; pgrep -a certbot), then run again once it ends"
  elif [ "$rc" = 124 ]; then
    why="certbot did not finish within 240 s: the ACME server $server is slow or does not answer"
    fix="check the ACME server (its status page), then run again"
  elif grep -qE 'failed to authenticate|Challenge failed|urn:ietf:params:acme:error:(unauthorized|dns|connection|incorrectResponse)' "$log"; then
    why="${failed:-$d} must resolve to this host and its port 80 be reachable from the ACME server, answering /.well-known/acme-challenge/ from $webroot; the ACME server could not validate ${failed:-it}${detail:+ ($detail)}"
    fix="the DNS record of ${failed:-$d} (A/AAAA to this host), a firewall on port 80, or an nginx server for ${failed:-$d} on port 80 other than the site's (nginx -T)"
  elif grep -qE 'Account at .* does not exist|accountDoesNotExist|Unable to find account|No such account' "$log"; then
    why="the ACME account certbot uses here is gone (its key removed from /etc/letsencrypt/accounts, or unknown to the ACME server)"
    fix="remove the host's stale account for $server (sudo ls /etc/letsencrypt/accounts/), then run ops provision again: it registers a new one"
  elif grep -qE 'rateLimited|too many (certificates|failed|requests|new orders)' "$log"; then
    why="the ACME server $server refuses for now: rate limited${detail:+ ($detail)}"
    fix="wait until the time it names (below; Let's Encrypt's limits: https://letsencrypt.org/docs/rate-limits/), then run again"
  elif grep -qE 'CERTIFICATE_VERIFY_FAILED|SSLError' "$log"; then
    why="this host does not trust the HTTPS certificate of the ACME server $server"
    fix="a test ACME server needs tls.acme_ca_file (its API CA); else check the host's CA certificates and its clock (date)"
  elif grep -qE 'Failed to establish a new connection|Connection refused|Max retries exceeded|NewConnectionError|Name or service not known|Temporary failure in name resolution|Read timed out|Connection reset|RemoteDisconnected' "$log"; then
    why="the ACME server $server could not be reached from this host"
    fix="check that it answers from the host (curl -sI $server), a firewall or proxy on the way, tls.acme_server; then run again"
  elif grep -qE 'expected .* to be a symlink|CertStorageError|configuration file .* is broken' "$log"; then
    why="certbot's files for $d are damaged (a file of /etc/letsencrypt/live/$d replaced by hand?)"
    fix="remove them on the host (sudo certbot delete --cert-name $d), then run ops provision again: it gets a new certificate"
  elif grep -qE 'urn:ietf:params:acme:error|Internal Server Error|Service Unavailable|Bad Gateway|status code 5[0-9][0-9]' "$log"; then
    why="the ACME server $server answered with an error${detail:+ ($detail)}"
    fix="run again later; if it lasts, see the ACME server's status page"
  else
    why="certbot failed (exit code $rc)"
    fix="see certbot's output below and /var/log/letsencrypt/letsencrypt.log on the host"
  fi
  echo "certbot could not get a certificate for $d: $why. $serving. To fix: $fix" >&2
  echo "certbot said (last lines):" >&2
  tail -n 12 "$log" | sed 's/^/  /' >&2
}
# acme_path_problem DOMAIN WEBROOT [ADDRESS]: what the ACME server's HTTP-01 request would meet, asked here first: a file
# put in WEBROOT/.well-known/acme-challenge/, fetched as http://DOMAIN/... from this host's nginx at ADDRESS (where the
# ACME server, as every visitor, reaches the host: "$gate_at" of visitorAddress; 127.0.0.1 when not given: a server
# block listening on the address itself, `listen <address>:80`, answers there for every name before the site's
# `listen 80`), redirects followed on this host (as the ACME server follows them, to ports 80 and 443). Prints what
# answered instead, the nginx files that name DOMAIN and those listening on ADDRESS itself; nothing when the file is served.
acme_path_problem() {
  local d=$1 w=$2 at=${3:-127.0.0.1} dir token out last code url files bound
  dir="$w/.well-known/acme-challenge"
  token="ops-check-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  if ! { mkdir -p "$dir" && printf '%s' "$token" > "$dir/$token"; }; then echo "could not write $dir/$token (full disk?)"; return 0; fi
  chmod 0644 "$dir/$token"
  out=$(curl --noproxy '*' -sk -L --max-redirs 5 --max-time 5 --resolve "$d:80:$at" --resolve "$d:443:$at" \
    -w '\n%{http_code} %{url_effective}' "http://$d/.well-known/acme-challenge/$token" 2>/dev/null) || true
  rm -f "$dir/$token"
  last=${out##*$'\n'}
  [ "${out%$'\n'*}" = "$token" ] && return 0
  code=${last%% *}; url=${last#* }
  files=$(grep -lwsF -- "$d" /etc/nginx/conf.d/*.conf /etc/nginx/sites-enabled/* 2>/dev/null | tr '\n' ' ' || true)
  bound=''
  if [ "$at" != 127.0.0.1 ]; then
    local re=${at//./\\.}; re=${re//\[/\\[}; re=${re//\]/\\]}
    bound=$(grep -lsE "^[^#]*listen[[:space:]]+$re:(80|443)([^0-9]|$)" /etc/nginx/conf.d/*.conf /etc/nginx/sites-enabled/* 2>/dev/null | tr '\n' ' ' || true)
  fi
  printf 'http://%s/.well-known/acme-challenge/ on this host answers %s%s (asked at %s), not the ACME webroot %s; the nginx files naming %s: %s%s' \
    "$d" "$([ "${code:-000}" = 000 ] && echo 'nothing (no HTTP answer)' || echo "HTTP $code")" "$([ "$url" != "http://$d/.well-known/acme-challenge/$token" ] && [ -n "$url" ] && echo " (redirected to ${url%/*}/...)")" "$at" "$w" "$d" "${files:-none}" \
    "${bound:+; listening on $at itself, taken by nginx for every name asked there before the sites listening on every address: $bound}"
  return 0
}

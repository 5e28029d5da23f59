# shellcheck shell=bash
# Certificates: cert_info PATH reports `cert` lines "PATH<TAB>field" (notAfter=, serial=, subject=, issuer=,
# DNS names and IP addresses), or "PATH<TAB>missing" / "PATH<TAB>unreadable". served_serial NAME: the serial nginx hands out
# on :443 for that name (SNI). Needs ops_report.
cert_info() {
  local f=$1 out line
  if [ ! -s "$f" ]; then ops_report cert "$f	missing"; return 0; fi
  if ! out=$(openssl x509 -in "$f" -noout -enddate -serial -subject -issuer 2>/dev/null); then ops_report cert "$f	unreadable"; return 0; fi
  out+=$'\n'$(openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null | grep -oE '(DNS|IP Address):[^, ]*' || true)
  while IFS= read -r line; do [ -z "$line" ] || ops_report cert "$f	$line"; done <<< "$out"
}
served_serial() {
  local s
  s=$(echo | timeout 5 openssl s_client -connect 127.0.0.1:443 -servername "$1" 2>/dev/null | openssl x509 -noout -serial 2>/dev/null) || true
  printf '%s' "${s#serial=}"
}

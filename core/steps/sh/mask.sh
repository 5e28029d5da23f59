# shellcheck shell=bash
# Masking on the host: what a step quotes of the app's output (a health answer's body, the programs' logs) with every
# secret value the app was given replaced by "***", whether or not the runner knows the values: ops status and ops
# logs run without the age key (status.yml: README "Status environments"), and then the runner masks nothing. Read as
# root; no value leaves the host. The texts to mask, per release kept on the host (the live one, the one kept warm,
# the older ones whose programs wrote the logs too):
# - its masks file, written by its deploy (core/steps/masks.ts releaseMasks): every exact form the runner masks for
#   each secret the release's .env holds (core/report.ts exactForms: its lines, a URL's password, the strings of a
#   JSON value, as programs print them quoted, URL-encoded), one a line;
# - each line of the value its environ holds for each variable the environment takes from a secret (a release
#   deployed before masks files, an environ changed since): trimmed, 3 characters at least, no boolean (the runner's
#   rule, core/secrets/parts.ts MIN_MASKED_LENGTH and core/secrets/tree-scalars.ts maskedText).
# Each once, longest first, so that a secret holding another is masked whole; as bytes (LC_ALL=C): the releases kept
# share most of their values.

# mask_forms RELEASES MASKS ENVIRON NAME...: the texts to mask for every release directory in RELEASES (its files
# named MASKS and ENVIRON), one a line, longest first.
mask_forms() {
  local releases=$1 masks=$2 environ=$3 dir rec name want line; shift 3
  for dir in "$releases"/*/; do
    [ ! -r "$dir$masks" ] || cat -- "$dir$masks"
    if [ "$#" -eq 0 ] || [ ! -r "$dir$environ" ]; then continue; fi
    while IFS= read -r -d '' rec; do
      name=${rec%%=*}
      for want; do
        [ "$name" = "$want" ] || continue
        while IFS= read -r line; do
          line=${line#"${line%%[![:space:]]*}"}; line=${line%"${line##*[![:space:]]}"}
          case $line in true | false) ;; *) [ "${#line}" -lt 3 ] || printf '%s\n' "$line" ;; esac
        done <<< "${rec#*=}"
      done
    done < "$dir$environ"
  done | LC_ALL=C awk 'length($0) && !seen[$0]++ { print length($0) "\t" $0 }' | LC_ALL=C sort -rn -k1,1 | cut -f2-
}
# mask_text RELEASES MASKS ENVIRON NAME...: stdin to stdout, line by line as it comes (sed -u: ops logs -f), every
# text mask_forms lists replaced by "***". The sed script holds the values: it is read from a pipe, never written to
# a file or given on a command line.
mask_text() {
  local script
  script=$(mask_forms "$@" | LC_ALL=C sed 's/[]\/$*.^[]/\\&/g; s/.*/s\/&\/***\/g/')
  if [ -z "$script" ]; then cat; return; fi
  LC_ALL=C sed -u -f <(printf '%s\n' "$script")
}

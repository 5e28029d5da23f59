# shellcheck shell=bash
# Files named after the UTC time they were made, BASE.<YYYYmmddTHHMMSSZ>[.N]SUFFIX (N from 2: another made in the same
# second), ordered by that time and then N as a number (.10 after .9, where the names' text puts it before .2, and
# BASE.<time>SUFFIX before BASE.<time>.2SUFFIX), never by the text of the names. A clock set back never names a new one
# older than one there: it takes the newest one's time with the next N, so it still counts as the newest.
# stamped_list BASE SUFFIX: those there, oldest first, in the array stamped_files (other names beside them ignored).
# stamped_next BASE SUFFIX: a free name that comes after all of them, in stamped_name.
# stamped_keep BASE SUFFIX COUNT: removes all but the newest COUNT.
stamped_re='^([0-9]{8}T[0-9]{6}Z)(\.([1-9][0-9]{0,8}))?$'
stamped_list() {
  local base=$1 suffix=$2 f rest line keyed=''
  for f in "$base".[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z*"$suffix"; do
    { [ -e "$f" ] || [ -L "$f" ]; } || continue
    rest=${f#"$base".}; rest=${rest%"$suffix"}
    [[ $rest =~ $stamped_re ]] || continue
    printf -v line '%s.%09d\t%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[3]:-1}" "$f"; keyed+=$line
  done
  stamped_files=()
  [ -z "$keyed" ] || mapfile -t stamped_files < <(printf '%s' "$keyed" | LC_ALL=C sort | cut -f2-)
}
stamped_next() {
  local base=$1 suffix=$2 now stamp n=1 rest
  now=$(date -u +%Y%m%dT%H%M%SZ); stamp=$now
  stamped_list "$base" "$suffix"
  if [ "${#stamped_files[@]}" -gt 0 ]; then
    rest=${stamped_files[-1]#"$base".}; rest=${rest%"$suffix"}
    if [[ $rest =~ $stamped_re ]] && [[ ! $now > ${BASH_REMATCH[1]} ]]; then stamp=${BASH_REMATCH[1]}; n=$(( ${BASH_REMATCH[3]:-1} + 1 )); fi
  fi
  stamped_name=$base.$stamp$suffix
  [ "$n" -eq 1 ] || stamped_name=$base.$stamp.$n$suffix
  while [ -e "$stamped_name" ] || [ -L "$stamped_name" ]; do n=$(( n + 1 )); stamped_name=$base.$stamp.$n$suffix; done
}
stamped_keep() {
  stamped_list "$1" "$2"
  [ "${#stamped_files[@]}" -le "$3" ] || rm -f -- "${stamped_files[@]:0:${#stamped_files[@]}-$3}"
}

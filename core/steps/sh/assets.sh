# shellcheck shell=bash
# What nginx serves of release.asset_dirs' { dir, url } (nginx-config.ts assetLocations): trees under layout.assets
# (current, next, previous) of a release's files, root's, its directories 0755 (nginx's workers go through them; the
# release itself is 0750).
# Provides
# - assets_link RELEASE TREE OWNER DEPS CARRIED DIR...: TREE made afresh, holding each DIR of the release in directory
#   RELEASE (a directory, not a link to one) as nginx is to serve it: every file one nginx's workers can read, none a
#   symbolic link; the release's own files only, not those carried into it (CARRIED: the file listing them,
#   NUL-separated paths relative to the release, layout.carriedAssets; they are the release live before it's, served from its own tree).
#   OWNER: the app user, who owns the release; DEPS: the directory of the dependency sets it may link into.
# - assets_reuse RELEASE FROM TREE CARRIED DIR...: TREE made of FROM's links (no file copied) when assets_link made
#   FROM of RELEASE as RELEASE is now (assets_source); fails, TREE untouched, otherwise.
#
# Files are hard links to the release's (no copy: the same inode, its mode and mtime), with two exceptions:
# - A symbolic link (nginx follows none: disable_symlinks, as one could name any file of the host) to a regular file or
#   a directory of the release itself or of its dependency sets (a build's `static/vendor -> ../node_modules/x/dist`),
#   no part of its path there starting with "." (not .env, .ops-environ, a build's manifest; below a DIR, the DIR's own
#   path does not count: Next.js's .next/static), is linked as that file, or that directory's files (its links resolved
#   in turn, 8 levels at most: a loop ends there); any other is left out (its URL falls through to the next tree, then
#   the app).
# - A file not readable by all (a build run with umask 077) is copied, root's and 0644, its mtime kept (nginx's
#   Last-Modified and ETag stay those of the other hosts'), when the app user owns it; left out otherwise (root must
#   not publish what the app user could not read). A copy, not a chmod of the link: the link is the release's own
#   file, and the release's file is the app's (its build and its checks see it as they made it); a symbolic link
#   resolved above may also name a file outside the asset directories, which nobody declared public. Only such
#   files are copied, so a usual build (umask 022) costs no space; and once per release: the switch reuses what the
#   rollout staged (assets_reuse).
# TREE/.ops-source (never served: no URL reaches a name starting with ".") records what TREE was made of.

# assets_source RELEASE CARRIED DIR...: what a tree of RELEASE's DIRs made now would hold, as one line: the release's
# real path and a digest of its files (path, inode, size, mtime, mode, owner, links followed; not its directories, whose mtime a carried file changes), those CARRIED left out.
assets_source() {
  local release=$1 carried=$2 real d p attrs
  shift 2
  real=$(realpath -e -- "$release") || return 1
  local -A out=()
  if [ -f "$carried" ] && [ -s "$carried" ]; then
    while IFS= read -r -d '' p; do out[$p]=1; done < "$carried"
  fi
  printf '%s %s\n' "$real" "$(
    cd -- "$release" || exit 1
    for d in "$@"; do
      if [ -d "$d" ] && [ ! -L "$d" ]; then find -L "$d" ! -type d -printf '%p\0%i %s %T@ %m %U %y\0' 2>/dev/null; fi
    done | if [ "${#out[@]}" -eq 0 ]; then cat; else
      while IFS= read -r -d '' p && IFS= read -r -d '' attrs; do
        [ -n "${out[$p]+x}" ] || printf '%s\0%s\0' "$p" "$attrs"
      done
    fi | sha256sum | cut -d' ' -f1
  )"
}

assets_link() {
  local release=$1 tree=$2 owner=$3 deps=$4 carried=$5 d f target path inside outside uid tmp pass found made
  shift 5
  uid=$(id -u -- "$owner")
  # What it is made of, read first: a change to the release while it is made leaves a record that no longer matches.
  made=$(assets_source "$release" "$carried" "$@")
  rm -rf -- "$tree"
  mkdir -p -- "$tree"
  for d in "$@"; do
    if [ -d "$release/$d" ] && [ ! -L "$release/$d" ]; then (cd -- "$release" && cp -al --parents -- "$d" "$tree/"); fi
  done
  inside=$(realpath -e -- "$release")
  outside=$(realpath -e -- "$deps" 2>/dev/null || true)
  for pass in 1 2 3 4 5 6 7 8; do
    found=""
    while IFS= read -r -d '' f; do
      found=1
      # Resolved where it is in the release (a relative link means its own directory there, not the tree's).
      target=$(realpath -e -- "$release/${f#"$tree"/}" 2>/dev/null || true)
      rm -f -- "$f"
      [ -n "$target" ] || continue
      path=${target#"$inside"/}
      if [ "$path" = "$target" ] && [ -n "$outside" ]; then path=${target#"$outside"/}; fi
      [ "$path" != "$target" ] || continue
      for d in "$@"; do
        if [[ $path == "$d"/* ]]; then path=${path#"$d"/}; break; fi
      done
      [[ /$path != */.* ]] || continue
      if [ -f "$target" ]; then
        ln -- "$target" "$f" 2>/dev/null || true
      elif [ -d "$target" ] && [ "$pass" -lt 8 ]; then
        # Its hidden entries are no more its files than a hidden target is (nor copied readable below).
        if cp -al -- "$target" "$f" 2>/dev/null; then find "$f" -mindepth 1 -name '.*' -prune -exec rm -rf -- {} +; else rm -rf -- "$f"; fi
      fi
    done < <(find "$tree" -type l -print0)
    [ -n "$found" ] || break
  done
  # What the app user changed in its release meanwhile: no link is kept (a link is linked, never followed, by ln).
  find "$tree" -type l -delete
  # Not its own (no symbolic link left in the tree to lead a removal out of it; nor a ".." part).
  if [ -f "$carried" ]; then
    while IFS= read -r -d '' f; do
      [[ /$f/ != */../* ]] || continue
      if [ -f "$tree/$f" ]; then rm -f -- "$tree/$f"; fi
    done < "$carried"
  fi
  while IFS= read -r -d '' f; do
    tmp=""
    if [ "$(stat -c %u -- "$f")" = "$uid" ] && tmp=$(mktemp -p "$tree") && cp --preserve=timestamps -- "$f" "$tmp" && chmod 0644 "$tmp"; then
      mv -f -- "$tmp" "$f"
    else
      rm -f -- "$f" ${tmp:+"$tmp"}
    fi
  done < <(find "$tree" -type f ! -perm -0004 -print0)
  find "$tree" -type d -exec chmod 0755 {} +
  printf '%s\n' "$made" > "$tree/.ops-source"
}

assets_reuse() {
  local release=$1 from=$2 tree=$3 carried=$4
  shift 4
  [ -d "$from" ] && [ ! -L "$from" ] && [ -f "$from/.ops-source" ] || return 1
  [ "$(cat -- "$from/.ops-source")" = "$(assets_source "$release" "$carried" "$@")" ] || return 1
  rm -rf -- "$tree"
  # Links to the same inodes (the copies made for files not readable by all too): nothing copied; FROM is kept.
  cp -al -- "$from" "$tree"
}

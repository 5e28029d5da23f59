# shellcheck shell=bash
# What nginx serves of release.asset_dirs' { dir, url } (nginx-config.ts assetLocations): trees under layout.assets
# (current, next, previous) of a release's files, root's, its directories 0755 (nginx's workers go through them; the
# release itself is 0750).
# Provides assets_link RELEASE TREE OWNER DIR...: TREE made afresh, holding each DIR of the release in directory
# RELEASE (a directory, not a link to one) as nginx is to serve it: every file one nginx's workers can read, none a
# symbolic link. OWNER: the app user, who owns the release.
#
# Files are hard links to the release's (no copy: the same inode, its mode and mtime), with two exceptions:
# - A symbolic link (nginx follows none: disable_symlinks, as one could name any file of the host) to a regular file
#   of the release itself, no part of its path there starting with "." (not .env, .ops-environ, a build's manifest),
#   is linked as that file; any other is left out (its URL falls through to the next tree, then the app). A link to a
#   directory is left out too.
# - A file not readable by all (a build run with umask 077) is copied, root's and 0644, its mtime kept (nginx's
#   Last-Modified and ETag stay those of the other hosts'), when the app user owns it; left out otherwise (root must
#   not publish what the app user could not read). A copy, not a chmod of the link: the link is the release's own
#   file, and the release's file is the app's (its build and its checks see it as they made it); a symbolic link
#   resolved above may also name a file outside the asset directories, which nobody declared public. Only such
#   files are copied, so a usual build (umask 022) costs no space.
assets_link() {
  local release=$1 tree=$2 owner=$3 d f target path inside uid tmp
  shift 3
  uid=$(id -u -- "$owner")
  rm -rf -- "$tree"
  mkdir -p -- "$tree"
  for d in "$@"; do
    if [ -d "$release/$d" ] && [ ! -L "$release/$d" ]; then (cd -- "$release" && cp -al --parents -- "$d" "$tree/"); fi
  done
  inside=$(realpath -e -- "$release")
  while IFS= read -r -d '' f; do
    target=$(realpath -e -- "$release/${f#"$tree"/}" 2>/dev/null || true)
    path=${target#"$inside"/}
    rm -f -- "$f"
    if [ -n "$target" ] && [ "$path" != "$target" ] && [[ /$path != */.* ]] && [ -f "$target" ]; then ln -- "$target" "$f" 2>/dev/null || true; fi
  done < <(find "$tree" -type l -print0)
  # What the app user changed in its release meanwhile: no link is kept (a link is linked, never followed, by ln).
  find "$tree" -type l -delete
  while IFS= read -r -d '' f; do
    tmp=""
    if [ "$(stat -c %u -- "$f")" = "$uid" ] && tmp=$(mktemp -p "$tree") && cp --preserve=timestamps -- "$f" "$tmp" && chmod 0644 "$tmp"; then
      mv -f -- "$tmp" "$f"
    else
      rm -f -- "$f" ${tmp:+"$tmp"}
    fi
  done < <(find "$tree" -type f ! -perm -0004 -print0)
  find "$tree" -type d -exec chmod 0755 {} +
}

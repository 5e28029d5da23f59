# shellcheck shell=bash
# The files of a release's commit, for a deploy's no-op: did anyone change them on the host since it went live?
# Provides tree_made DIR REC (at the release's making, before its build: the record of its files, TREE_MADE),
# tree_record DIR REC (at its switch: those still as made, TREE_LIVE) and tree_changed DIR REC (at a no-op: the first
# file of TREE_LIVE changed or gone, printed; nothing when none), for the release in directory DIR whose records are
# in REC (root's: layout.record; the app owns DIR, so nothing is written there). Needs TREE_MADE and TREE_LIVE (the
# records' names: layout.treeMade, layout.treeLive).
#
# A record is `<size> <mtime, s> <path>` per file, NUL-terminated, sorted (C locale): a stat per file, not a hash
# of the contents (6,500 files, 180 MB: 0.1 s against 1.5 s with a warm cache; a no-op runs it on every deploy). An
# edit changes a file's mtime (and mostly its size); one that keeps both to the second is not seen.
# Only the commit's own files are recorded (what git archive, the submodules and Git LFS put there, REVISION,
# release.json), and of them only those the build, the migrations and the start left as they were made: the app
# user owns the release and may write anywhere in it, so what its build made and what it writes itself (caches,
# logs, __pycache__, a database) is not compared; a file added is not seen (the app adds files all the time).
# Compiled Python, logs, SQLite databases and placeholder files are left out even when committed (Python rewrites a
# stale .pyc on an import, at any time; an app writes its database on a request).

# The NUL-terminated paths read from stdin (relative to DIR) as records; a path that is gone has none.
tree_stats() { (cd -- "$1" && xargs -0r stat --printf '%s %Y %n\0' -- 2>/dev/null) | LC_ALL=C sort -z; }
# The paths of records read from stdin.
tree_paths() { sed -z 's/^[^ ]* [^ ]* //'; }

tree_made() {
  (cd -- "$1" && find . -name __pycache__ -prune -o \( -type f -o -type l \) ! -name '*.py[co]' ! -name '*.log' ! -name '*.db' ! -name '*.db-*' ! -name '*.sqlite*' ! -name .gitkeep ! -name .keep -printf '%P\0') | tree_stats "$1" > "$2/$TREE_MADE"
}

# A release made by an older version has no TREE_MADE in REC: none recorded, so none compared.
tree_record() {
  [ -f "$2/$TREE_MADE" ] || return 0
  if LC_ALL=C comm -z -12 "$2/$TREE_MADE" <(tree_paths < "$2/$TREE_MADE" | tree_stats "$1") > "$2/$TREE_LIVE.new" && chmod 0600 "$2/$TREE_LIVE.new" && mv -f "$2/$TREE_LIVE.new" "$2/$TREE_LIVE"; then return 0; fi
  rm -f "$2/$TREE_LIVE.new"; return 1
}

tree_changed() {
  LC_ALL=C comm -z -23 "$2/$TREE_LIVE" <(tree_paths < "$2/$TREE_LIVE" | tree_stats "$1") | head -z -n 1 | tree_paths | tr -d '\0'
}

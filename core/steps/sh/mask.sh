# shellcheck shell=bash
# Masking on the host: what a step quotes of the app's output (a health answer's body, the programs' logs) with every
# secret value the app was given replaced by "***", whether or not the runner knows the values: ops status and ops
# logs run without the age key (status.yml: README "Status environments"), and then the runner masks nothing. Read as
# root; no value leaves the host. The texts to mask:
# - per release kept on the host (the live one, the one kept warm, the older ones whose programs wrote the logs too):
#   - its masks file, written by its deploy in its record directory (root's: mask_record; core/steps/masks.ts
#     releaseMasks): every form the runner masks for each secret the release's .env holds (core/report.ts
#     exactForms: its lines, a URL's password, the strings of a JSON value, as programs print them quoted, quoted
#     for a shell (set -x, printf %q, shlex.quote), URL-encoded, repr'd, HTML-escaped, cut short by pydantic, with
#     their white space collapsed, in base64 and hex, a byte at a time: `<Buffer 5a 71 …>`), one a line;
#   - each line of the value its environ holds for each variable the environment takes from a secret (a release
#     deployed before masks files, an environ changed since): trimmed, 3 characters at least, no boolean (the
#     runner's rule, core/secrets/parts.ts MIN_MASKED_LENGTH and core/secrets/tree-scalars.ts maskedText), and with
#     its white space collapsed (what a probe's verdict quotes of a body: probe_body);
# - the kept masks file (layout.keptMasks): the same texts of every release pruned since, written by the prune
#   (keep_masks): their programs' lines stay in the log files (rotated by size, kept whatever their age) after the
#   release is gone, and its secret values may have been rotated since.
# mask_text also hides what a printer shows of a text it cut short at an ellipsis (cut, in MASK_PERL), and the pieces
# of a text it folded over lines (hold, in MASK_PERL).
# Each once, longest first (the releases kept share most of their values); every place a text covers in what is
# masked found as it is, overlapping ones hidden as one "***" (a secret holding another, two printed together), as
# the runner hides them (core/report.ts Masker.redact); as bytes (LC_ALL=C).

# mask_record RELEASES RECORDS ID: where the masks file of release ID is, in mask_record: its record directory under
# RECORDS (root's), or for a release made by an older ops, which has none, its own directory under RELEASES (the app
# user's: read there for it alone; history.sh release_record's rule for its other records).
mask_record() { mask_record=$2/$3; [ -d "$mask_record" ] || mask_record=$1/$3; }
# release_forms RELEASES RECORDS ID MASKS ENVIRON NAME...: the texts to mask of release ID: its masks file MASKS (in
# its record: mask_record) and the values of the variables NAME... in its environ ENVIRON (in its own directory), one
# a line, unordered. Regular files only: the app user may leave a FIFO or a device at a name in its directory.
release_forms() {
  local dir=$1/$3 masks=$4 environ=$5 mask_record rec name want line norm
  mask_record "$1" "$2" "$3"; shift 5
  [ ! -f "$mask_record/$masks" ] || cat -- "$mask_record/$masks"
  if [ "$#" -eq 0 ] || [ ! -f "$dir/$environ" ]; then return 0; fi
  while IFS= read -r -d '' rec; do
    name=${rec%%=*}
    for want; do
      [ "$name" = "$want" ] || continue
      while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}; line=${line%"${line##*[![:space:]]}"}
        case $line in true | false) continue ;; esac
        [ "${#line}" -lt 3 ] || printf '%s\n' "$line"
        norm=${line//[$'\t\r\f\v']/ }
        while [[ $norm == *"  "* ]]; do norm=${norm//"  "/" "}; done
        [ "$norm" = "$line" ] || [ "${#norm}" -lt 3 ] || printf '%s\n' "$norm"
      done <<< "${rec#*=}"
    done
  done < "$dir/$environ"
}
# mask_forms RELEASES RECORDS MASKS ENVIRON KEPT NAME...: the texts to mask for every release directory in RELEASES
# (release_forms, its record under RECORDS) and in the file KEPT (keep_masks), one a line, longest first.
mask_forms() {
  local releases=$1 records=$2 masks=$3 environ=$4 kept=$5 dir id; shift 5
  {
    [ ! -r "$kept" ] || cat -- "$kept"
    for dir in "$releases"/*/; do
      [ -d "$dir" ] || continue
      id=${dir%/}; id=${id##*/}
      release_forms "$releases" "$records" "$id" "$masks" "$environ" "$@"
    done
  } | LC_ALL=C awk 'length($0) && !seen[$0]++ { print length($0) "\t" $0 }' | LC_ALL=C sort -rn -k1,1 | cut -f2-
}
# mask_text RELEASES RECORDS MASKS ENVIRON KEPT NAME...: stdin to stdout, line by line as it comes (ops logs -f), every
# text mask_forms lists hidden as the runner hides it (core/report.ts Masker.redact): each stretch of the line that
# texts cover, overlapping ones as one, replaced by "***" (two secrets printed together, one ending with the other's
# start: replaced one after another, the second would lose its overlap and show its rest), then a text holding "*"
# that the "***" completes, longest first. One pass over each line whatever the number of texts (a regular
# expression of them all: about seven forms a secret), in Perl (perl-base: Essential on Debian), as bytes: a text is
# matched as it is (quotemeta), whatever its bytes. The texts are read from a pipe (fd 3), never written to a file
# or given on a command line.
mask_text() {
  LC_ALL=C perl -C0 -e "$MASK_PERL" 3< <(mask_forms "$@")
}
# The program mask_text runs (no value in it): the texts on fd 3 (longest first), then the lines of stdin.
# shellcheck disable=SC2016 # Perl's variables
MASK_PERL='
binmode STDIN; binmode STDOUT; $| = 1;
open(my $forms, "<&=", 3) or die "ops: cannot read the masks: $!\n"; binmode $forms;
my @forms = sort { length($b) <=> length($a) } grep { length } map { chomp; $_ } <$forms>;
close $forms;
if (!@forms) { print while <STDIN>; exit 0 }
# The texts as alternations of about 32 KB each: Perl makes one small enough a trie, matched in one pass over a
# line (Aho-Corasick); a whole large masks file (thousands of values) would be tried text by text at every byte.
# Longest first: a match is the longest text of its part at the first place one starts.
my (@parts, @part, $size);
for my $k (0 .. $#forms) {
  push @part, quotemeta $forms[$k]; $size += length $forms[$k];
  if ($size >= 32768 || $k == $#forms) { my $alt = join "|", @part; push @parts, qr/$alt/; @part = (); $size = 0 }
}
my @starred = grep { index($_, "*") >= 0 } @forms;
# A secret a printer cut short, the cut marked by an ellipsis ("..." or U+2026): the texts of 8 bytes or more (no weak
# value) by their first and last 3 bytes, for cut() (core/report.ts Masker.hideCut, the same rule).
my (%cut_start, %cut_end, $cut_long);
for my $f (@forms) {
  next if length($f) < 8;
  push @{$cut_start{substr($f, 0, 3)}}, $f; push @{$cut_end{substr($f, -3)}}, $f;
  $cut_long = length($f) if length($f) > ($cut_long // 0);
}
# cut(LINE): LINE with the piece just before each ellipsis (a closing quote skipped) that starts a text, and the piece
# just after one (an opening quote skipped) that ends one, 8 bytes at least, not from inside a word, the longest, as
# "***" (overlapping ones as one). The runner also leaves a piece that is a common word (core/secrets/parts.ts COMMON).
sub cut {
  my ($l) = @_;
  my @spans;
  my $n = length $l;
  while ($l =~ /\.{3,}|\xe2\x80\xa6/g) {
    my ($ms, $me) = ($-[0], $+[0]);
    my $e = $ms; $e-- if $e > 0 && substr($l, $e - 1, 1) =~ /["\x27`]/;
    for (my $j = $e > $cut_long ? $e - $cut_long : 0; $j + 3 <= $e; $j++) {
      next if $j > 0 && substr($l, $j - 1, 1) =~ /[A-Za-z0-9]/;
      my $list = $cut_start{substr($l, $j, 3)} or next;
      my $p = substr($l, $j, $e - $j);
      last if length($p) < 8;
      if (grep { index($_, $p) == 0 } @$list) { push @spans, [$j, $e]; last }
    }
    my $s = $me; $s++ if $s < $n && substr($l, $s, 1) =~ /["\x27`]/;
    for (my $f = $s + $cut_long < $n ? $s + $cut_long : $n; $f - 3 >= $s; $f--) {
      next if $f < $n && substr($l, $f, 1) =~ /[A-Za-z0-9]/;
      my $list = $cut_end{substr($l, $f - 3, 3)} or next;
      my $p = substr($l, $s, $f - $s);
      last if length($p) < 8;
      if (grep { length($_) >= length($p) && substr($_, -length($p)) eq $p } @$list) { push @spans, [$s, $f]; last }
    }
  }
  return $l unless @spans;
  @spans = sort { $a->[0] <=> $b->[0] } @spans;
  my ($out, $copied, $k) = ("", 0, 0);
  while ($k < @spans) {
    my ($from, $to) = @{$spans[$k]};
    for ($k++; $k < @spans && $spans[$k][0] < $to; $k++) { $to = $spans[$k][1] if $spans[$k][1] > $to }
    $out .= substr($l, $copied, $from - $copied) . "***"; $copied = $to;
  }
  return $out . substr($l, $copied);
}
# A secret a printer folded over lines (core/report.ts Masker.hideFolds, the same rule): the lines read as two
# channels, the body of each line (the frame at its ends and the offset of an od -c line left out, its white space
# out) one after another, and the bytes of consecutive hex dump lines as lower-case hex; a text (its white space out,
# 8 bytes at least) found whole in a channel and running over the end of a line is hidden on each line it covers. A
# line is held while a fold may run on from it (the end of the channel, at most the longest text back, starts a text:
# hold), until the next line says (or no line comes for half a second: ops logs -f). The work a line: its bytes and
# the length of the longest text, whatever the number of texts (their starts hashed, the texts as alternations).
# %fold: the texts, white space out; %fold_pre: their proper starts; $fold3: their first 3 bytes, one alternation.
my (%fold, %fold_pre, %fold3, $fold_long, @fparts, $fold3);
for my $f (@forms) {
  (my $d = $f) =~ s/\s+//g;
  next if length($d) < 8 || $fold{$d}++;
  $fold_pre{substr($d, 0, $_)} = 1 for 1 .. length($d) - 1;
  $fold3{quotemeta substr($d, 0, 3)} = 1;
  $fold_long = length($d) if length($d) > ($fold_long // 0);
}
if (%fold) {
  my (@p, $size);
  for my $d (sort { length($b) <=> length($a) } keys %fold) {
    push @p, quotemeta $d; $size += length $d;
    if ($size >= 32768) { my $alt = join "|", @p; push @fparts, qr/\G(?:$alt)/; @p = (); $size = 0 }
  }
  if (@p) { my $alt = join "|", @p; push @fparts, qr/\G(?:$alt)/ }
  my $alt = join "|", keys %fold3; $fold3 = qr/$alt/;
}
# dump_line(LINE): a line of a hex dump (core/secrets/parts.ts dumpLine, the same reading): its bytes as hex, where each
# pair of each byte stands, and where its column starts (undef without one); () for any other line.
sub dump_line {
  my ($l) = @_;
  my $p = $l =~ /^(?: *[0-9A-Fa-f]{4,16}(?::|(?= )))?/ ? $+[0] : 0;
  my ($width, $hex, $before, @at) = (0, "", $p);
  pos($l) = $p;
  while ($l =~ /\G {1,2}([0-9A-Fa-f]{2,8})(?= |$)/gc) {
    my $g = $1;
    last if length($g) % 2 || ($width && length($g) > $width) || ($width && @at && length($hex) % $width);
    $width ||= length $g;
    my $start = $+[0] - length $g;
    push @at, map { $start + 2 * $_ } 0 .. length($g) / 2 - 1;
    $hex .= $g; $before = $p; $p = $+[0];
  }
  # a last group after two spaces as long as the bytes before it is their column (xxd -c 2)
  my $last = substr($l, $before, $p - $before);
  if ($p == length($l) && $last =~ /^ {2}/ && length($last) - 2 == @at - (length($last) - 2) / 2) {
    splice @at, @at - (length($last) - 2) / 2;
    $hex = substr($hex, 0, 2 * @at); $p = $before;
  }
  return () if @at < 1;
  my $rest = substr($l, $p);
  return (lc $hex, \@at, undef) if $rest !~ /\S/;
  return (lc $hex, \@at, $p + length $1) if $rest =~ /^( {2,}[|>])(.*)[|<]$/s && length($2) == @at;
  return (lc $hex, \@at, $p + length $1) if $rest =~ /^( {2,})/ && length($rest) - length($1) == @at;
  return ();
}
# The lines held (each [line, its end, its spans, its dump]), the channels over them (body and hex: "\n" where one
# ends), where each held line starts in each, and where a fold may start in each (its end so far a proper start of a
# text): a fold found runs on from there; the lines before the first such place are printed (release).
my ($tch, $hch, @held, @tat, @hat, @topen, @hopen) = ("", "");
# fold_at(CHANNEL, STARTS, J): where the longest text starting at J in the channel ends, if it runs over the end of
# the held line J lies in, hidden there (the spans of each line it covers); nothing else.
sub fold_at {
  my ($c, $s, $j, $hex) = @_;
  my $y = -1;
  for my $part (@fparts) { pos($c) = $j; $y = $+[0] if $c =~ /$part/g && $+[0] > $y }
  return if $y < 0;
  my ($i, $k) = (line_at($s, $j), line_at($s, $y - 1));
  return if $i == $k;
  for my $n ($i .. $k) {
    my $h = $held[$n];
    my $f = ($j > $s->[$n] ? $j : $s->[$n]) - $s->[$n];
    my $t = ($n < $k ? $s->[$n + 1] : $y) - $s->[$n];
    if ($hex) {
      my ($at, $col) = @{$h->[3]}[1, 2];
      my ($fb, $tb) = (int($f / 2), int(($t - 1) / 2));
      push @{$h->[2]}, [$at->[$fb], $at->[$tb] + 2];
      push @{$h->[2]}, [$col + $fb, $col + $tb + 1] if defined $col;
    } else {
      my ($l, $a, $b) = @{$h->[4]};
      my @p = grep { substr($l, $_, 1) !~ /\s/ } $a .. $b - 1;
      push @{$h->[2]}, [$p[$f], $p[$t - 1] + 1];
    }
  }
}
# hold(LINE, END): adds a line to the held ones; the places a fold may start followed on (each one its end no longer
# starts a text tried for a fold); the lines before the first one left printed.
sub hold {
  my ($l, $e) = @_;
  my ($a, $b) = ($l =~ /^[\s\x27"`()\[\]{}<>|,\\]*/ ? $+[0] : 0, length $l);
  $b-- while $b > $a && substr($l, $b - 1, 1) =~ /[\s\x27"`()\[\]{}<>|,\\]/;
  $a = length $1 if $a < $b && $l =~ /^([0-9a-f]{6,7})(?: {3}[^ ]| {2}\\[0-9a-z]| [0-7]{3}| {4})+$/;
  my @dump = $l =~ /^ *[0-9A-Fa-f]{2}/ ? dump_line($l) : ();
  push @tat, length $tch; push @hat, length $hch;
  if ($a == $b) { $tch .= "\n" } else { (my $t = substr($l, $a, $b - $a)) =~ s/\s+//g; $tch .= $t }
  $hch .= @dump ? $dump[0] : "\n\n"; # two bytes: the hex stays at whole bytes
  push @held, [$l, $e, [], \@dump, [$l, $a, $b]];
  my $keep = @held;
  for my $ch ([$tch, \@tat, \@topen, 0], [$hch, \@hat, \@hopen, 1]) {
    my ($c, $s, $open, $hex) = @$ch;
    my $n = length $c;
    my @alive;
    for my $j (@$open) { if ($fold_pre{substr($c, $j)}) { push @alive, $j } else { fold_at($c, $s, $j, $hex) } }
    # the places in this line its end may be a fold starting at
    my $j0 = $n - $fold_long + 1;
    $j0 = $s->[-1] if $j0 < $s->[-1];
    my $tail = substr($c, $j0);
    while ($tail =~ /$fold3/g) { push @alive, $j0 + $-[0] if $fold_pre{substr($tail, $-[0])}; pos($tail) = $-[0] + 1 }
    push @alive, $n - 2 if $n - 2 >= $j0 && $fold_pre{substr($c, -2)};
    push @alive, $n - 1 if $n - 1 >= $j0 && $fold_pre{substr($c, -1)};
    @alive = grep { !($hex && $_ % 2) } @alive;
    @$open = @alive;
    my $i = @alive ? line_at($s, $alive[0]) : @held;
    $keep = $i if $i < $keep;
  }
  release($keep) if $keep > 0;
}
# line_at(STARTS, OFFSET): the held line a channel offset lies in.
sub line_at {
  my ($s, $o) = @_;
  my $i = $#$s;
  $i-- while $i > 0 && $s->[$i] > $o;
  return $i;
}
# release(N): the first N held lines printed (all: each place a fold may start at tried as it is: no next line).
sub release {
  my ($upto) = @_;
  if ($upto == @held) {
    fold_at($tch, \@tat, $_, 0) for @topen;
    fold_at($hch, \@hat, $_, 1) for @hopen;
  }
  emit(@$_[0 .. 2]) for splice @held, 0, $upto;
  if (@held) {
    my ($bt, $bh) = ($tat[$upto], $hat[$upto]);
    $tch = substr($tch, $bt); $hch = substr($hch, $bh);
    @tat = map { $_ - $bt } @tat[$upto .. $#tat]; @hat = map { $_ - $bh } @hat[$upto .. $#hat];
    @topen = map { $_ - $bt } @topen; @hopen = map { $_ - $bh } @hopen;
  } else { @tat = (); @hat = (); @topen = (); @hopen = (); $tch = ""; $hch = "" }
}
# Lines read with sysread: a held line is released when no line comes for half a second.
my ($in, $eof) = ("", 0);
while (1) {
  my $i = index($in, "\n");
  if ($i >= 0 || ($eof && length $in)) {
    my $line = substr($in, 0, $i >= 0 ? $i + 1 : length $in, "");
    my $end = chomp($line) ? "\n" : "";
    if ($fold_long) { hold($line, $end) } else { emit($line, $end, []) }
    next;
  }
  last if $eof;
  if (@held) { my $r = ""; vec($r, fileno(STDIN), 1) = 1; release(0 + @held) unless select($r, undef, undef, 0.5) }
  my $n = sysread(STDIN, $in, 65536, length $in);
  die "ops: cannot read: $!\n" unless defined $n;
  $eof = 1 unless $n;
}
release(0 + @held) if @held;
# emit(LINE, END, SPANS): LINE printed with every text and each of SPANS ([start, end) of a fold) hidden.
sub emit {
  my ($line, $end, $spans) = @_;
  my %ends; # by where a text starts in the line: where the longest one there ends
  for my $s (@$spans) { $ends{$s->[0]} = $s->[1] if ($ends{$s->[0]} // -1) < $s->[1] }
  for my $part (@parts) {
    while ($line =~ /$part/g) {
      $ends{$-[0]} = $+[0] if ($ends{$-[0]} // -1) < $+[0];
      pos($line) = $-[0] + 1; # from the next byte: another may start inside this one and end past it
    }
  }
  if (%ends) {
    my ($out, $copied, $from, $to) = ("", 0, -1, -1);
    for my $at (sort { $a <=> $b } keys %ends) {
      if ($at < $to) { $to = $ends{$at} if $ends{$at} > $to; next }
      if ($from >= 0) { $out .= substr($line, $copied, $from - $copied) . "***"; $copied = $to }
      ($from, $to) = ($at, $ends{$at});
    }
    $line = $out . substr($line, $copied, $from - $copied) . "***" . substr($line, $to);
    # only where a "***" was put in: a text found as it was is hidden already
    for my $f (@starred) { $line =~ s/\Q$f\E/***/g if index($line, $f) >= 0 }
  }
  $line = cut($line) if %cut_start && $line =~ /\.\.\.|\xe2\x80\xa6/;
  print $line, $end;
}
'
# keep_masks ID RELEASES RECORDS MASKS ENVIRON KEPT NAME...: adds the texts to mask of release ID (release_forms) to
# the file KEPT (root 0600, made so), before the release is pruned: its programs' lines outlive it in the log files.
# Kept as long as the app's base directory: a log file's mtime says when it was last written, not how old its first
# lines are (a quiet program's log holds lines of releases long gone), so no rule on ages would be safe.
keep_masks() {
  local id=$1 releases=$2 records=$3 masks=$4 environ=$5 kept=$6; shift 6
  ( umask 077; { [ ! -r "$kept" ] || cat -- "$kept"; release_forms "$releases" "$records" "$id" "$masks" "$environ" "$@"; } | LC_ALL=C awk 'length($0) && !seen[$0]++' > "$kept.new" )
  mv -f -- "$kept.new" "$kept"
}
# mask_load RELEASES RECORDS MASKS ENVIRON KEPT NAME...: what mask_forms lists, in the array MASK_FORMS (longest
# first), for mask_string and mask_cut_end: what a step quotes of an answer or a process is masked before it is cut
# (mask_clip).
mask_load() {
  MASK_FORMS=()
  mapfile -t MASK_FORMS < <(mask_forms "$@")
  MASK_LOADED=1
}
# mask_ready: mask_load with MASK_ARGS (mask_forms's arguments, set by the step: core/steps/libraries.ts maskLibrary)
# once per script; nothing without them (then nothing is masked, cuts still drop the word they fall in).
mask_ready() {
  if [ -z "${MASK_LOADED:-}" ] && [ -n "${MASK_ARGS+x}" ]; then mask_load "${MASK_ARGS[@]}"; fi
}
# mask_clip TEXT MAX: TEXT as a step may quote it, in MASK_TEXT: masked whole first (mask_ready, mask_string), then
# its first MAX characters, a cut dropping what may start a secret and the word it falls in (mask_cut_end; not the
# word before it when the cut falls on white space) and said by "...". In that order: a secret cut, or with its
# white space or control characters changed, is no longer found whole.
mask_clip() {
  mask_ready; mask_string "$1"
  if [ "${#MASK_TEXT}" -gt "$2" ]; then
    local between=0; [[ ${MASK_TEXT:$2:1} != [[:space:]] ]] || between=1
    mask_cut_end "${MASK_TEXT:0:$2}" "$between"; MASK_TEXT+=...
  fi
}
# mask_string TEXT: TEXT with every text of MASK_FORMS (mask_load; none when not loaded) hidden as mask_text hides it
# (each stretch texts cover, overlapping ones as one "***", then a text holding "*" the "***" completes), in
# MASK_TEXT. No process: bash's own matching, as bytes (what a step quotes is short: a body's first bytes, a
# process's arguments); but a TEXT holding an ellipsis ("..." or U+2026) goes through mask_text's own program
# (MASK_PERL), so a secret a printer cut short there is hidden by the one rule (its cut).
mask_string() {
  local LC_ALL=C f t=$1 win at past from=-1 to=-1 copied=0 out=''
  local -a ends=() # by where a text starts in TEXT: where the longest one there ends
  if [[ -n ${MASK_FORMS[0]+x} && ( $t == *...* || $t == *$'\xe2\x80\xa6'* ) ]]; then
    MASK_TEXT=$(printf '%s' "$t" | perl -C0 -e "$MASK_PERL" 3< <(printf '%s\n' "${MASK_FORMS[@]}"); printf x)
    MASK_TEXT=${MASK_TEXT%x}
    return 0
  fi
  for f in ${MASK_FORMS[@]+"${MASK_FORMS[@]}"}; do
    [[ $t == *"$f"* ]] || continue
    # Looked for in windows of 4 KB: bash finds where a text is (${x%%"$f"*}) in time the length of x, each time.
    at=0
    while [ $(( at + ${#f} )) -le "${#t}" ]; do
      win=${t:at:4096+${#f}}
      if [[ $win != *"$f"* ]]; then at=$(( at + 4097 )); continue; fi
      win=${win%%"$f"*}; at=$(( at + ${#win} )); past=$(( at + ${#f} ))
      [ "${ends[at]:-0}" -ge "$past" ] || ends[at]=$past
      at=$(( at + 1 )) # from the next byte: another may start inside this one
    done
  done
  for at in "${!ends[@]}"; do # in order
    if [ "$at" -lt "$to" ]; then [ "${ends[at]}" -le "$to" ] || to=${ends[at]}; continue; fi
    [ "$from" -lt 0 ] || { out+="${t:copied:from-copied}***"; copied=$to; }
    from=$at; to=${ends[at]}
  done
  MASK_TEXT=$t
  [ "$from" -ge 0 ] || return 0
  MASK_TEXT="$out${t:copied:from-copied}***${t:to}"
  for f in ${MASK_FORMS[@]+"${MASK_FORMS[@]}"}; do
    [[ $f != *"*"* || $MASK_TEXT != *"$f"* ]] || MASK_TEXT=${MASK_TEXT//"$f"/***}
  done
}
# mask_cut_end TEXT [BETWEEN]: TEXT that was cut at its end (a length bound reached), as it may be quoted, in
# MASK_TEXT: its longest end that is the start of a text of MASK_FORMS dropped (the first characters of a secret the
# cut fell in, white space and all: a passphrase), then, unless BETWEEN is 1 (the cut fell between two words), the
# word the cut fell in (back to white space or one of /?&=;,:"'<>: a secret the host does not know, a token in a
# URL), then trailing white space.
mask_cut_end() {
  local LC_ALL=C f p n t=$1 sep='[[:space:]/?&=;,:"'"'"'<>]'
  for f in ${MASK_FORMS[@]+"${MASK_FORMS[@]}"}; do
    n=${#t}; p=$(( n - ${#f} + 1 )); [ "$p" -ge 0 ] || p=0
    for (( ; p < n; p++ )); do
      if [[ $f == "${t:p}"* ]]; then t=${t:0:p}; break; fi
    done
  done
  # shellcheck disable=SC2295 # sep is a pattern
  [ "${2:-0}" = 1 ] || t=${t%"${t##*$sep}"}
  MASK_TEXT=${t%"${t##*[![:space:]]}"}
}

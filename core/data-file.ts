// What a file given to `ops initdata` is, when it is not a data file for the app's loader: a database dump (any
// pg_dump format, compressed or not), a compressed or binary file. Said by what it is and how such a file is
// loaded, instead of the symptom a YAML or UTF-8 check meets in it (which advised iconv for a pg_dump archive).
import { gunzipSync, constants as zlib } from 'node:zlib';
import { quote } from './shell.ts';

/** What a file is (`what`, words for an error), how to load or use it (`how`), and whether it is a database dump. */
export interface FileKind {
  what: string;
  how: string;
  dump?: true;
}

// Signatures (magic numbers) from each format's own definition: pg_dump's archive header "PGDMP"
// (src/bin/pg_dump/pg_backup_archiver.c), POSIX ustar (offset 257), RFC 1952 gzip, bzip2 "BZh", xz, zstd (RFC 8878),
// zip local header "PK\3\4", 7z, SQLite's "SQLite format 3\0" header.
const GZIP = [0x1f, 0x8b];
const COMPRESSED: [number[], string, string][] = [
  [[0x42, 0x5a, 0x68], 'bzip2', 'bunzip2 -k'],
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz', 'unxz -k'],
  [[0x28, 0xb5, 0x2f, 0xfd], 'zstd', 'unzstd'],
  [[0x50, 0x4b, 0x03, 0x04], 'zip', 'unzip'],
  [[0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], '7z', '7z x'],
];

const startsWith = (b: Uint8Array, sig: number[], at = 0): boolean => sig.every((x, i) => b[at + i] === x);
const ascii = (b: Uint8Array, from: number, to: number): string => Buffer.from(b.subarray(from, to)).toString('latin1');

/** Where a restore reads the dump: the file, or what a pipe gives (`pipe`: the command before `|`, a gzip'd dump's). */
interface Source {
  file: string;
  pipe?: string;
}

/** A command reading the dump: `tool args FILE`, or `pipe | tool args` (`stdin`: how the tool is told to read it). */
const reading = (src: Source, tool: string, fileArg: string, stdin = ''): string => (src.pipe ? `${src.pipe} | ${tool}${stdin}` : `${tool} ${fileArg}${quote(src.file)}`);

const pgRestore = (src: Source, what: string): FileKind => ({
  what,
  dump: true,
  how: `restore it with pg_restore, in one transaction and without the other environment's roles: ${reading(src, 'pg_restore --single-transaction --exit-on-error --no-owner --no-privileges -d "$DATABASE_URL"', '')}`,
});

/** A plain SQL dump's kind by its first lines (the header pg_dump, pg_dumpall and mysqldump write), or undefined. */
function sqlDumpKind(text: string, src: Source): FileKind | undefined {
  const head = text.replace(/^\uFEFF/, '').slice(0, 64 * 1024);
  if (/^--\s*\n-- PostgreSQL database cluster dump/.test(head))
    return { what: 'a PostgreSQL cluster dump (pg_dumpall)', dump: true, how: `it creates roles and databases: restore it as a superuser (${reading(src, 'psql -v ON_ERROR_STOP=1', '-f ', ' -f -')}), not into this environment's database` };
  if (/^--\s*\n-- PostgreSQL database dump/.test(head)) {
    // made with --create: CREATE DATABASE and \connect, which one transaction cannot hold
    const creates = /^CREATE DATABASE /m.test(head);
    return {
      what: `a PostgreSQL plain SQL dump (pg_dump${creates ? ' --create' : ''})`,
      dump: true,
      how: creates
        ? 'it creates its database and \\connects to it, which one transaction cannot hold: make it again without --create (and with --no-owner --no-privileges if made on another environment), then restore it with psql --single-transaction -v ON_ERROR_STOP=1 -d "$DATABASE_URL"'
        : `restore it in one transaction, stopping at the first error: ${reading(src, 'psql --single-transaction -v ON_ERROR_STOP=1 -d "$DATABASE_URL"', '-f ', ' -f -')} (a dump from another environment made with --no-owner --no-privileges)`,
    };
  }
  if (/^-- MySQL dump /.test(head) || /^-- MariaDB dump /.test(head)) return { what: 'a MySQL dump (mysqldump)', dump: true, how: 'restore it with the mysql client' };
  return undefined;
}

/**
 * The kind of `bytes` (a file's content, or its first part) when it is not a data file the loader could read:
 * a PostgreSQL dump (custom and tar archives, plain SQL with pg_dump's or pg_dumpall's header, a MySQL dump), a
 * compressed file (gzip looked into: a gzip'd dump is said as one), an SQLite database, other binary data (a NUL
 * byte or control characters in its first 8 KiB); undefined for text that may be one (YAML, JSON, Latin-1 text:
 * those are judged by the checks that follow). `file` is how the hints name the file (shell-quoted in them). Pure.
 */
export function fileKind(bytes: Uint8Array, file: string): FileKind | undefined {
  return kindOf(bytes, { file });
}

function kindOf(bytes: Uint8Array, src: Source): FileKind | undefined {
  const file = quote(src.file);
  if (startsWith(bytes, [0x50, 0x47, 0x44, 0x4d, 0x50])) return pgRestore(src, 'a PostgreSQL custom-format dump (pg_dump -Fc)');
  if (bytes.length > 262 && ascii(bytes, 257, 262) === 'ustar') {
    // pg_dump -Ft writes its table of contents first, as toc.dat
    if (ascii(bytes, 0, 100).replace(/\0.*$/s, '') === 'toc.dat') return pgRestore(src, 'a PostgreSQL tar-format dump (pg_dump -Ft)');
    return { what: 'a tar archive', how: `extract it (tar -xf ${file}) and give the data file it holds` };
  }
  if (startsWith(bytes, GZIP)) {
    let inner: FileKind | undefined;
    try {
      // the first part is enough to know what it holds: a cut stream is read as far as it goes
      const text = gunzipSync(bytes.subarray(0, 1024 * 1024), { finishFlush: zlib.Z_SYNC_FLUSH }).subarray(0, 64 * 1024);
      inner = kindOf(text, { pipe: src.pipe ? `${src.pipe} | gunzip -c` : `gunzip -c ${file}`, file: src.file });
    } catch {
      // not a gzip stream after all, or a damaged one: said as compressed data
    }
    if (inner?.dump) return { ...inner, what: `a gzip-compressed ${inner.what.replace(/^an? /, '')}` };
    return { what: 'a gzip-compressed file', how: `decompress it (gunzip -k ${file}) and give the data file it holds` };
  }
  for (const [sig, name, tool] of COMPRESSED) if (startsWith(bytes, sig)) return { what: `${name === 'xz' ? 'an' : 'a'} ${name}-compressed file`, how: `decompress it (${tool} ${file}) and give the data file it holds` };
  if (ascii(bytes, 0, 16) === 'SQLite format 3\0') return { what: 'an SQLite database', dump: true, how: 'export its data as the YAML or JSON the loader reads' };
  // UTF-16 text (its byte order mark: Windows PowerShell 5's `>`) has NULs but is text: the UTF-8 check says how to convert it
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) return undefined;
  const head = bytes.subarray(0, 8192);
  // text holds no NUL and few C0 controls but tab, newlines and form feed (Latin-1 text is judged by the UTF-8 check)
  const controls = head.filter((b) => b === 0 || (b < 0x20 && ![0x09, 0x0a, 0x0c, 0x0d, 0x1b].includes(b))).length;
  if (head.includes(0) || controls > head.length / 100) return { what: 'binary data, not text', how: 'check the path' };
  return sqlDumpKind(Buffer.from(head).toString('utf8'), src);
}

/**
 * The kind of a sops file's plaintext when it is not data for the loader: `bytes` is the one value `data` of a file
 * sops encrypted with its binary store (`sops encrypt dump.sql`: a name it reads neither as YAML nor as JSON), which
 * decrypts to `{data: <the file's bytes>}`, a mapping that would pass as data. Said as fileKind says the plain file,
 * `sops-encrypted` added, the restore reading `sops decrypt --output-type binary FILE` through a pipe; other kinds
 * (a tar archive, compressed or binary data) told to decrypt it first. Undefined for text that may be data. Pure.
 */
export function sopsBinaryKind(bytes: Uint8Array, file: string): FileKind | undefined {
  const decrypt = `sops decrypt --output-type binary ${quote(file)}`;
  const sql = (): FileKind | undefined => (looksLikeSql(Buffer.from(bytes.subarray(0, 64 * 1024)).toString('utf8')) ? { what: 'SQL statements', dump: true, how: `run them with the database's client: ${decrypt} | psql --single-transaction -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f -` } : undefined);
  const kind = kindOf(bytes, { file, pipe: decrypt }) ?? sql();
  if (!kind) return undefined;
  return {
    ...kind,
    what: `a sops-encrypted ${kind.what.replace(/^an? /, '')} (sops's binary store: it decrypts to one value, data, holding the file)`,
    how: kind.dump ? kind.how : `decrypt it first (${decrypt} > FILE), then ${kind.how.split(quote(file)).join('FILE')}`,
  };
}

/** A directory given as the data file: a pg_dump directory-format dump (it holds toc.dat) said as one, or undefined. Pure. */
export function directoryKind(entries: string[], file: string): FileKind | undefined {
  return entries.includes('toc.dat') ? pgRestore({ file }, 'a PostgreSQL directory-format dump (pg_dump -Fd)') : undefined;
}

/**
 * Whether `text` reads as SQL statements (its first line that is not blank or a `--` comment starts with a
 * statement's keyword, or psql's \connect), for a file that is not valid YAML: said as SQL, not as a YAML slip. Pure.
 */
export function looksLikeSql(text: string): boolean {
  const first = text.replace(/^\uFEFF/, '').split('\n').find((l) => l.trim() !== '' && !l.trimStart().startsWith('--'));
  return first !== undefined && /^\s*(?:SET|CREATE|INSERT|COPY|ALTER|DROP|BEGIN|START TRANSACTION|SELECT|UPDATE|DELETE|GRANT|COMMENT ON|\\connect|\\c)\b/i.test(first);
}

/** How initdata reads a data file, by its name: the format it checks it as (`yaml`, `json`; `xml` and `other`: text it cannot read), and the name's suffix it keeps on the host (`suffix`: '' or `.json`, `.v2.yaml`...). */
export interface DataName {
  format: 'yaml' | 'json' | 'xml' | 'other';
  suffix: string;
}

// Extensions of compressed files: those Django's loaddata reads (gz, zip, bz2, lzma, xz: its compression_formats) and others.
const COMPRESSED_EXT = new Set(['gz', 'tgz', 'zip', 'bz2', 'tbz2', 'lzma', 'xz', 'txz', 'zst', 'z', '7z']);
// What sops adds to an encrypted file's name (secret.enc.yaml, *.sops.json): not said of the decrypted text sent.
const SOPS_EXT = new Set(['sops', 'enc']);

/**
 * The format of the data file `name` (a path: its base name counts) by its extensions, and the suffix (from the
 * base name's first dot) it keeps on the host, where loaders choosing a reader by the file's name (Django's
 * loaddata, by its last two: `.json`, `.xml`, `.yaml`, `.json.gz`) read it. `decrypted`: the text sent is a sops
 * file's plaintext, so `.sops`/`.enc` is left out. A name without extension is YAML (checked as such), sent
 * without one. Pure.
 * @returns a DataName, or `{ refused }` (why, in words): an extension with characters other than ASCII letters,
 * digits, `-` and `_` (the name reaches a shell and the loader's command line), a suffix over 64 characters, or a
 * compressed file's extension (`compressed`: initdata checks data before sending it and cannot read inside one).
 */
export function dataName(name: string, decrypted = false): DataName | { refused: string; compressed?: true } {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.indexOf('.', base.startsWith('.') ? 1 : 0);
  if (dot < 0) return { format: 'yaml', suffix: '' };
  const parts = base.slice(dot + 1).split('.');
  const bad = parts.find((p) => !/^[A-Za-z0-9_-]+$/.test(p));
  if (bad !== undefined) return { refused: `its extension ${JSON.stringify(`.${bad}`)} holds characters other than letters, digits, - and _ (it names the file on the host, in the loader's command)` };
  const last = parts.at(-1)!.toLowerCase();
  if (COMPRESSED_EXT.has(last)) return { refused: `its name says a compressed file (.${parts.at(-1)})`, compressed: true };
  const kept = decrypted ? parts.filter((p) => !SOPS_EXT.has(p.toLowerCase())) : parts;
  const suffix = kept.map((p) => `.${p}`).join('');
  if (suffix.length > 64) return { refused: `its extensions are ${suffix.length} characters long (at most 64)` };
  const format = last === 'json' ? 'json' : last === 'yaml' || last === 'yml' ? 'yaml' : last === 'xml' ? 'xml' : SOPS_EXT.has(last) ? 'yaml' : 'other';
  return { format, suffix };
}


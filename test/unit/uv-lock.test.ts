// A uv project's lock read on the runner (core/uv-lock.ts): where its packages come from, and whether it is in step
// with pyproject.toml as `uv sync --locked` judges it. The texts are as uv 0.13.9 wrote them (uv init, uv add,
// uv lock), the out-of-step ones edited by hand after, as a user editing pyproject.toml without `uv lock` would.
import { describe, expect, it } from 'vitest';
import { readUvLock, uvLockStale } from '../../core/uv-lock.ts';

const PYPROJECT = `[project]
name = "api"
version = "0.1.0"
description = "Add your description here"
readme = "README.md"
requires-python = ">=3.11"
dependencies = [
    "Flask[async] == 3.0.3",
    "Werkzeug >= 3.0 , <4 ; python_version >= '3.8'",
    "itsdangerous~=2.1.0",  # pinned for the signer
]

[project.optional-dependencies]
dotenv = ["python-dotenv>=1"]

[dependency-groups]
dev = ["pytest>=8"]
`;

const LOCK = `version = 1
revision = 5
requires-python = ">=3.11"

[[package]]
name = "api"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "flask", extra = ["async"] },
    { name = "itsdangerous" },
    { name = "werkzeug" },
]

[package.optional-dependencies]
dotenv = [
    { name = "python-dotenv" },
]

[package.dev-dependencies]
dev = [
    { name = "pytest" },
]

[package.metadata]
requires-dist = [
    { name = "flask", extras = ["async"], specifier = "==3.0.3" },
    { name = "itsdangerous", specifier = "~=2.1.0" },
    { name = "python-dotenv", marker = "extra == 'dotenv'", specifier = ">=1" },
    { name = "werkzeug", marker = "python_full_version >= '3.8'", specifier = ">=3.0,<4" },
]
provides-extras = ["dotenv"]

[package.metadata.requires-dev]
dev = [{ name = "pytest", specifier = ">=8" }]

[[package]]
name = "blinker"
version = "1.9.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/21/28/9b3f50ce0e048515135495f198351908d99540d69bfdc8c1d15b73dc55ce/blinker-1.9.0.tar.gz", hash = "sha256:b4ce2265a7abece45e7cc896e98dbebe6cead56bcf805a3d23136d145f5445bf", size = 22460, upload-time = "2024-11-08T17:25:47.436Z" }
`;

describe('a uv.lock in step with its pyproject.toml', () => {
  it('is so as uv writes it: names normalized, extras, specifiers without spaces, markers rewritten, comments; optional dependencies and groups not compared', () => {
    expect(uvLockStale(PYPROJECT, LOCK)).toBeUndefined();
    // One line, as uv writes a single requirement; a virtual project (uv init --app without a build system).
    expect(uvLockStale('[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.10"\ndependencies = ["packaging>=26.3"]\n', 'version = 1\nrevision = 5\nrequires-python = ">=3.10"\n\n[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n\n[package.metadata]\nrequires-dist = [{ name = "packaging", specifier = ">=26.3" }]\n')).toBeUndefined();
  });

  it('is not, when a dependency was added, removed, given other versions or extras, or requires-python changed: each said', () => {
    expect(uvLockStale(PYPROJECT.replace('"itsdangerous~=2.1.0",', '"itsdangerous~=2.1.0", "requests",'), LOCK)).toBe("requests is in pyproject.toml's dependencies, not in the lock");
    expect(uvLockStale(PYPROJECT.replace('    "itsdangerous~=2.1.0",  # pinned for the signer\n', ''), LOCK)).toBe("itsdangerous is in the lock, no longer in pyproject.toml's dependencies");
    expect(uvLockStale(PYPROJECT.replace('~=2.1.0', '<2.3'), LOCK)).toBe('itsdangerous is "<2.3" in pyproject.toml, "~=2.1.0" in the lock');
    expect(uvLockStale(PYPROJECT.replace('Flask[async]', 'Flask'), LOCK)).toMatch(/^flask is in pyproject\.toml's dependencies, not in the lock; flask\[async\] is in the lock/);
    expect(uvLockStale(PYPROJECT.replace('requires-python = ">=3.11"', 'requires-python = ">=3.12"'), LOCK)).toBe('requires-python is ">=3.12" in pyproject.toml, ">=3.11" in the lock');
  });

  it('compares versions as PEP 440 does, as uv judges them (checked against `uv lock --check`, uv 0.13.9): >=24 is >=24.0; ==24.* is not >=24.0; a changed marker is in step', () => {
    const lock = (spec: string) => `[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n\n[package.metadata]\nrequires-dist = [{ name = "packaging", marker = "python_full_version >= '3.8'", specifier = "${spec}" }]\n`;
    const pyproject = (spec: string) => `[project]\nname = "app"\nversion = "0.1.0"\ndependencies = ["packaging${spec}; python_version >= '3.9'"]\n`;
    expect(uvLockStale(pyproject('>=24'), lock('>=24.0'))).toBeUndefined();
    expect(uvLockStale(pyproject('>=v24.00.0, <25'), lock('<25,>=24.0'))).toBeUndefined();
    expect(uvLockStale(pyproject('==24.*'), lock('>=24.0'))).toBe('packaging is "==24.*" in pyproject.toml, ">=24.0" in the lock');
  });

  it('is not judged when it cannot be read for sure: dynamic dependencies, no [project] table, no entry for the project', () => {
    expect(uvLockStale(PYPROJECT.replace('[project]\n', '[project]\ndynamic = ["dependencies"]\n').replace('"itsdangerous~=2.1.0",', '"x",'), LOCK)).toBeUndefined();
    expect(uvLockStale('[tool.uv.workspace]\nmembers = ["packages/*"]\n', LOCK)).toBeUndefined();
    expect(uvLockStale(PYPROJECT.replace('"itsdangerous~=2.1.0",', '"x",'), LOCK.replace('source = { editable = "." }', 'source = { editable = "api" }'))).toBeUndefined();
  });

  it('a requirement from a URL or a source (git, path) is compared by name only', () => {
    const pyproject = '[project]\nname = "app"\nversion = "0.1.0"\ndependencies = ["lib", "tool @ git+https://github.com/org/tool@v1"]\n';
    const lock = '[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n\n[package.metadata]\nrequires-dist = [\n    { name = "lib", editable = "packages/lib" },\n    { name = "tool", git = "https://github.com/org/tool?rev=v1" },\n]\n';
    expect(uvLockStale(pyproject, lock)).toBeUndefined();
    expect(uvLockStale(pyproject.replace('"lib", ', ''), lock)).toBe("lib is in the lock, no longer in pyproject.toml's dependencies");
  });
});

describe('what a uv.lock installs', () => {
  it('from a registry only: hashed (uv export writes a hash for each), nothing local', () => {
    expect(readUvLock(LOCK)).toEqual({ hashed: true, local: [] });
  });

  it("a workspace's members and path dependencies are local; a git source has no hash to require", () => {
    const lock = `${LOCK}\n[[package]]\nname = "lib"\nversion = "1.0.0"\nsource = { editable = "packages/lib" }\n\n[[package]]\nname = "tool"\nversion = "1.0.0"\nsource = { git = "https://github.com/org/tool?rev=v1#0123abc" }\n\n[[package]]\nname = "vendored"\nversion = "2.0"\nsource = { path = "vendor/vendored-2.0-py3-none-any.whl" }\n`;
    expect(readUvLock(lock)).toEqual({ hashed: false, local: ['lib (packages/lib)', 'vendored (vendor/vendored-2.0-py3-none-any.whl)'] });
  });
});

//! Compiled (AOT) artifacts on disk: a component is compiled once and later runs load the
//! artifact instead of compiling.
//!
//! Loading machine code from a file is `unsafe` in wasmtime 48 (`Component::deserialize*`), and
//! the workspace forbids `unsafe`. The one safe path is wasmtime's own artifact cache
//! (`Config::cache`): `Component::from_binary` hashes the component bytes together with the
//! engine's compile settings and wasmtime's version, and loads the artifact stored under that
//! key instead of compiling; an artifact it cannot read (stale, other version, undecodable) is
//! recompiled and overwritten. wasmtime does not checksum what it loads, so riptide keeps its own
//! manifest (`riptide-artifacts.json`: SHA-256 of every artifact file it saw written) and, before
//! any load, deletes every file whose checksum does not match or that it did not write (corrupt,
//! tampered or foreign). Each file is hashed once per process (at open, or its first load):
//! later loads compare its metadata (device, inode, size, mtime, ctime) with what was recorded
//! when it was verified, and hash it again only if that changed, which a rewrite cannot avoid
//! (ctime cannot be set back). A file changed within `RACY_MARGIN` of its verification might
//! keep coarse timestamps, so it stays unrecorded and is hashed on every load until it is older.
//! This guards against corruption and strangers' files, not against an
//! attacker who can also rewrite the manifest: the directory is created private (0700).
//!
//! It owns the directory and the manifest; it must not instantiate or lease (`pool/leasing.rs`).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Cache, Engine};

use super::error::WasmError;

/// riptide's checksum file, beside wasmtime's cache directory.
const MANIFEST: &str = "riptide-artifacts.json";
/// Format version of the manifest; another version is discarded (all artifacts then rebuild).
const MANIFEST_VERSION: u32 = 1;
/// How old a file's last change must be for its metadata to vouch for it: file timestamps may
/// be as coarse as a scheduler tick, so a rewrite right after the hash could keep them.
const RACY_MARGIN: Duration = Duration::from_secs(2);

/// How a component's compiled code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactOutcome {
    /// Loaded from a verified artifact: nothing compiled.
    Loaded,
    /// No artifact yet: compiled and stored.
    Compiled,
    /// An artifact was rejected (corrupt, foreign or stale) and the component recompiled.
    Rebuilt,
}

impl ArtifactOutcome {
    /// The snake_case name used in labels and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactOutcome::Loaded => "loaded",
            ArtifactOutcome::Compiled => "compiled",
            ArtifactOutcome::Rebuilt => "rebuilt",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    /// Artifact file (relative to the cache directory) -> its checksum and its component.
    files: BTreeMap<String, Entry>,
    /// Files hashed by this process, with their metadata then (never written to disk).
    #[serde(skip)]
    verified: BTreeMap<String, Stamp>,
}

/// What a file's metadata says about its content: any rewrite changes at least the ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Result<Self, WasmError> {
        let m = std::fs::metadata(path).map_err(|source| WasmError::Io { path: path.to_path_buf(), source })?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// True if the file last changed long enough before `now` (see `RACY_MARGIN`).
    fn settled(&self, now: SystemTime) -> bool {
        let newest = self.mtime.max(self.ctime);
        let changed = UNIX_EPOCH + Duration::new(newest.0.max(0).unsigned_abs(), newest.1.clamp(0, 999_999_999) as u32);
        now.duration_since(changed).is_ok_and(|age| age >= RACY_MARGIN)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    sha256: String,
    component_sha256: String,
}

/// wasmtime's part of the cache directory.
pub(crate) fn wasmtime_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("wasmtime")
}

/// Creates `dir` (and parents) readable by this user only.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), WasmError> {
    let io = |source| WasmError::Io { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The artifact directory and its manifest. Loads are serialised (one compile at a time, and
/// wasmtime's hit/miss counters then attribute to the one load in progress).
#[derive(Debug)]
pub(crate) struct ArtifactStore {
    root: PathBuf,
    cache: Cache,
    manifest: Mutex<Manifest>,
    /// Components whose artifact was removed by the sweep at open: their next compile is a
    /// rebuild.
    rejected_at_open: Mutex<Vec<String>>,
}

impl ArtifactStore {
    /// Opens the directory and removes every artifact file the manifest does not vouch for.
    /// Returns the store and how many files were removed.
    pub(crate) fn open(root: PathBuf, cache: Cache) -> Result<(Self, usize), WasmError> {
        ensure_private_dir(&root)?;
        let manifest = read_manifest(&root);
        let store =
            ArtifactStore { root, cache, manifest: Mutex::new(manifest), rejected_at_open: Mutex::new(Vec::new()) };
        let removed = store.sweep(None)?;
        *store.rejected_at_open.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = removed.1;
        Ok((store, removed.0))
    }

    /// Compiles or loads `wasm` (SHA-256 `component_sha256`), verifying its artifact first.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        extractor: &str,
        wasm: &[u8],
        component_sha256: &str,
    ) -> Result<(Component, ArtifactOutcome), WasmError> {
        let mut manifest = self.manifest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (rejected, _) = self.sweep_locked(&mut manifest, Some(component_sha256))?;
        let rejected_before = {
            let mut at_open = self.rejected_at_open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let found = at_open.iter().any(|c| c == component_sha256);
            at_open.retain(|c| c != component_sha256);
            found
        };
        let misses = self.cache.cache_misses();
        let component = Component::from_binary(engine, wasm)
            .map_err(|e| WasmError::Compile { extractor: extractor.to_owned(), source: WasmError::boxed(e) })?;
        if self.cache.cache_misses() == misses {
            return Ok((component, ArtifactOutcome::Loaded));
        }
        self.record_new_files(&mut manifest, component_sha256)?;
        let outcome =
            if rejected > 0 || rejected_before { ArtifactOutcome::Rebuilt } else { ArtifactOutcome::Compiled };
        Ok((component, outcome))
    }

    /// Artifact files recorded for a component.
    pub(crate) fn files_of(&self, component_sha256: &str) -> Vec<PathBuf> {
        let manifest = self.manifest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        manifest
            .files
            .iter()
            .filter(|(_, e)| e.component_sha256 == component_sha256)
            .map(|(rel, _)| self.root.join(rel))
            .collect()
    }

    /// Compiles done by this engine so far (wasmtime cache misses).
    pub(crate) fn compiles(&self) -> usize {
        self.cache.cache_misses()
    }

    fn sweep(&self, only: Option<&str>) -> Result<(usize, Vec<String>), WasmError> {
        let mut manifest = self.manifest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.sweep_locked(&mut manifest, only)
    }

    /// Deletes artifact files that fail their checksum or that the manifest does not know.
    /// With `only`, checks just that component's files (a cold load); otherwise every file. A
    /// file verified before whose metadata is unchanged is not read again.
    /// Returns how many were removed and the components they belonged to (when known).
    fn sweep_locked(&self, manifest: &mut Manifest, only: Option<&str>) -> Result<(usize, Vec<String>), WasmError> {
        let mut removed = 0;
        let mut components = Vec::new();
        for path in artifact_files(&wasmtime_dir(&self.root))? {
            let rel = self.relative(&path);
            let entry = manifest.files.get(&rel).cloned();
            if let (Some(only), Some(e)) = (only, &entry)
                && e.component_sha256 != only
            {
                continue;
            }
            let stamp = Stamp::of(&path)?;
            if entry.is_some() && manifest.verified.get(&rel) == Some(&stamp) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| WasmError::Io { path: path.clone(), source })?;
            if entry.as_ref().is_some_and(|e| e.sha256 == sha256_hex(&bytes)) {
                // Taken before the read: a change during it alters the metadata, so it is seen.
                if stamp.settled(SystemTime::now()) {
                    manifest.verified.insert(rel, stamp);
                }
                continue;
            }
            manifest.verified.remove(&rel);
            components.extend(entry.map(|e| e.component_sha256));
            tracing::warn!(path = %path.display(), "Removed a compiled artifact that riptide did not write or that fails its checksum.");
            std::fs::remove_file(&path).map_err(|source| WasmError::Io { path: path.clone(), source })?;
            manifest.files.remove(&rel);
            removed += 1;
        }
        if removed > 0 {
            self.save(manifest)?;
        }
        Ok((removed, components))
    }

    /// After a compile: checksums every file the manifest does not know yet (the new artifact).
    fn record_new_files(&self, manifest: &mut Manifest, component_sha256: &str) -> Result<(), WasmError> {
        for path in artifact_files(&wasmtime_dir(&self.root))? {
            let rel = self.relative(&path);
            if manifest.files.contains_key(&rel) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| WasmError::Io { path: path.clone(), source })?;
            let entry = Entry { sha256: sha256_hex(&bytes), component_sha256: component_sha256.to_owned() };
            // Just written, so not settled: the next loads hash it until it is (see `Stamp`).
            manifest.verified.remove(&rel);
            manifest.files.insert(rel, entry);
        }
        self.save(manifest)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).to_string_lossy().into_owned()
    }

    /// Writes the manifest atomically (temporary file, then rename).
    fn save(&self, manifest: &mut Manifest) -> Result<(), WasmError> {
        manifest.version = MANIFEST_VERSION;
        let path = self.root.join(MANIFEST);
        let tmp = self.root.join(format!("{MANIFEST}.{}.tmp", std::process::id()));
        let io = |source| WasmError::Io { path: path.clone(), source };
        // Serialising a map of strings cannot fail; an empty manifest would only cost rebuilds.
        let json = serde_json::to_vec_pretty(&*manifest).unwrap_or_default();
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

fn read_manifest(root: &Path) -> Manifest {
    let parsed = std::fs::read(root.join(MANIFEST)).ok().and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
    match parsed {
        Some(m) if m.version == MANIFEST_VERSION => m,
        _ => Manifest::default(),
    }
}

/// Artifact files under wasmtime's cache directory: everything but its usage statistics
/// (`*.stats`) and in-progress writes (`*.wip-*`), which it rewrites freely and never loads.
fn artifact_files(dir: &Path) -> Result<Vec<PathBuf>, WasmError> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(WasmError::Io { path: d, source }),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() && !name.ends_with(".stats") && !name.contains(".wip-") => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digest() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn statistics_and_partial_writes_are_not_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("modules/wasmtime-48");
        std::fs::create_dir_all(&sub).unwrap();
        for name in ["abc", "abc.stats", "abc.wip-atomic-write-mod"] {
            std::fs::write(sub.join(name), b"x").unwrap();
        }
        assert_eq!(artifact_files(dir.path()).unwrap(), vec![sub.join("abc")]);
    }

    #[test]
    fn a_just_changed_file_is_not_settled() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let stamp = Stamp::of(&file).unwrap();
        assert!(!stamp.settled(SystemTime::now()));
        assert!(stamp.settled(SystemTime::now() + RACY_MARGIN + Duration::from_secs(1)));
    }

    #[test]
    fn an_artifact_rewritten_after_its_verification_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::wasm::WasmConfig { aot_cache_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        let (engine, cache) = crate::wasm::engine::build(&config).unwrap();
        let (store, _) = ArtifactStore::open(config.cache_dir(), cache).unwrap();
        let wasm = crate::wasm::embedded::ARTICLE;
        let sha = sha256_hex(wasm);
        assert_eq!(store.load(&engine, "article", wasm, &sha).unwrap().1, ArtifactOutcome::Compiled);
        // As if verified long ago: later loads trust the metadata instead of hashing.
        let files = store.files_of(&sha);
        {
            let mut manifest = store.manifest.lock().unwrap();
            for file in &files {
                manifest.verified.insert(store.relative(file), Stamp::of(file).unwrap());
            }
        }
        assert_eq!(store.load(&engine, "article", wasm, &sha).unwrap().1, ArtifactOutcome::Loaded);
        // Past a timestamp tick, then the same size with a flipped byte: the ctime moved.
        std::thread::sleep(Duration::from_millis(50));
        for file in &files {
            let mut bytes = std::fs::read(file).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(file, bytes).unwrap();
        }
        assert_eq!(store.load(&engine, "article", wasm, &sha).unwrap().1, ArtifactOutcome::Rebuilt);
    }
}

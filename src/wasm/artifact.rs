//! Compiled (AOT) artifacts on disk: a component is compiled once, serialized with wasmtime's
//! `Component::serialize`, and later loads (a restart, a cold lease) read the artifact through
//! `aot.rs` instead of compiling.
//!
//! The directory (`wasm.aot_cache_dir`, created 0700) holds one `<component sha256>-<engine
//! key>.cwasm` per component and engine setting, and `riptide-aot.json`, the manifest riptide
//! writes beside them: per file, the SHA-256 of the bytes it wrote, the component they came from
//! and the engine key. Nothing else is ever loaded: an artifact the manifest does not vouch for,
//! that fails its checksum, or that another engine compiled is refused (logged), removed and the
//! component compiled again; so is every artifact in a directory found writable by others (it is
//! made private again first). A directory owned by another user is not used at all.
//!
//! Whatever is wrong with the directory, the worker keeps working: a directory that cannot be
//! created, is not riptide's own, or is read-only means compiling in memory (logged once), and
//! a read-only one still serves the valid artifacts it holds.
//!
//! It owns the directory and the manifest; it must not instantiate or lease
//! (`pool/leasing.rs`), and it never calls wasmtime's deserializer itself (`aot.rs` does).

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::aot::{self, OwnDir, Refusal, Vouched};
use super::error::WasmError;

/// riptide's manifest, in the artifact directory.
const MANIFEST: &str = "riptide-aot.json";
/// Format version of the manifest; another version is discarded (all artifacts then rebuild).
/// (3: the artifact checksum became XXH3-128, field `checksum`.)
const MANIFEST_VERSION: u32 = 3;
/// Artifact file suffix.
const SUFFIX: &str = ".cwasm";
/// What earlier riptide versions kept here (wasmtime's own cache and its checksum file): removed
/// at open, never loaded.
const LEGACY: [&str; 2] = ["wasmtime", "riptide-artifacts.json"];

/// How a component's compiled code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactOutcome {
    /// Loaded from a verified artifact: nothing compiled.
    Loaded,
    /// No artifact yet: compiled (and stored, when the directory is writable).
    Compiled,
    /// An artifact was refused (corrupt, truncated, foreign, or in a directory others could
    /// write) and the component recompiled.
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
    /// Artifact file name -> what riptide wrote into it.
    files: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    /// `digest::checksum_hex` of the file's bytes as written.
    checksum: String,
    /// SHA-256 (hex) of the component it was compiled from.
    component_sha256: String,
    /// `aot::engine_key` of the engine that compiled it.
    engine: String,
}

pub(crate) use super::digest::{checksum_hex, sha256_hex};

/// The artifact directory and its manifest. Loads are serialised (one compile at a time).
#[derive(Debug)]
pub(crate) struct ArtifactStore {
    root: PathBuf,
    /// False when the directory is not used at all (not creatable, or not riptide's own).
    usable: bool,
    /// Set after the first failed write (read-only directory or disk): later compiles stay in
    /// memory without trying again.
    read_only: AtomicBool,
    engine_key: String,
    manifest: Mutex<Manifest>,
    /// Components whose artifact was removed at open: their next compile is a rebuild.
    rejected_at_open: Mutex<Vec<String>>,
    /// Compiles done by this store.
    compiles: AtomicUsize,
    /// Artifacts refused so far (at open or at a load).
    refused: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind these locks: a panic while holding one cannot leave it half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ArtifactStore {
    /// Opens (creating it private) the artifact directory for `engine`'s settings, and removes
    /// what riptide does not vouch for. Never fails: an unusable directory means compiling in
    /// memory. Returns the store and how many artifact files were refused.
    pub(crate) fn open(root: PathBuf, engine: &Engine) -> (Self, usize) {
        let engine_key = aot::engine_key(engine);
        let mut store = ArtifactStore {
            root,
            usable: false,
            read_only: AtomicBool::new(false),
            engine_key,
            manifest: Mutex::new(Manifest::default()),
            rejected_at_open: Mutex::new(Vec::new()),
            compiles: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        };
        let removed = match store.claim() {
            Ok(removed) => {
                store.usable = true;
                removed
            }
            Err(reason) => {
                tracing::warn!(dir = %store.root.display(), reason = %reason, "AOT artifact directory not used; components are compiled in memory.");
                // Whatever artifacts it holds are refused: their components count as rebuilt.
                let refused = artifact_names(&store.root);
                lock(&store.rejected_at_open).extend(refused.iter().filter_map(|n| component_of(n)));
                refused.len()
            }
        };
        store.refused.store(removed, Ordering::Relaxed);
        (store, removed)
    }

    /// Makes sure the directory exists and is riptide's own, reads the manifest, and removes
    /// files it does not vouch for. A directory of this user's that others could write is made
    /// private again and emptied of artifacts (any of them may have been planted).
    fn claim(&mut self) -> Result<usize, Refusal> {
        let io = |source| Refusal::Io { path: self.root.clone(), source };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.root).map_err(io)?;
        let mut removed = 0;
        let dir = match OwnDir::check(&self.root) {
            Ok(dir) => dir,
            Err(reason @ Refusal::Writable { .. }) => {
                tracing::warn!(dir = %self.root.display(), reason = %reason, "AOT artifact directory was writable by others; made private, its artifacts are refused and rebuilt.");
                std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
                let dir = OwnDir::check(&self.root)?;
                removed += self.remove_all_artifacts(&dir);
                dir
            }
            Err(reason) => return Err(reason),
        };
        self.remove_legacy(&dir);
        *lock(&self.manifest) = read_manifest(&dir);
        removed += self.sweep(&dir);
        Ok(removed)
    }

    /// Removes every artifact file and the manifest (their contents cannot be trusted).
    fn remove_all_artifacts(&self, dir: &OwnDir) -> usize {
        let _ = std::fs::remove_file(dir.path().join(MANIFEST));
        let mut removed = 0;
        for name in artifact_names(dir.path()) {
            if self.remove(dir, &name) {
                lock(&self.rejected_at_open).extend(component_of(&name));
                removed += 1;
            }
        }
        removed
    }

    /// Removes artifact files the manifest does not know (strangers' files, or left by a crash
    /// before the manifest was saved) and manifest entries whose file is gone.
    fn sweep(&self, dir: &OwnDir) -> usize {
        let names = artifact_names(dir.path());
        let mut manifest = lock(&self.manifest);
        let mut removed = 0;
        for name in &names {
            if !manifest.files.contains_key(name) {
                tracing::warn!(path = %dir.path().join(name).display(), "Removed a compiled artifact that riptide did not write.");
                if self.remove(dir, name) {
                    lock(&self.rejected_at_open).extend(component_of(name));
                    removed += 1;
                }
            }
        }
        let before = manifest.files.len();
        manifest.files.retain(|name, _| names.contains(name));
        if manifest.files.len() != before {
            self.save(dir, &manifest);
        }
        removed
    }

    fn remove_legacy(&self, dir: &OwnDir) {
        for name in LEGACY {
            let path = dir.path().join(name);
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            if removed.is_ok() {
                tracing::info!(path = %path.display(), "Removed artifacts of an earlier riptide version.");
            }
        }
    }

    /// Loads `wasm`'s artifact (SHA-256 `component_sha256`) or compiles it (and stores the new
    /// artifact). Refused artifacts are logged, removed, and rebuilt.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        extractor: &str,
        wasm: &[u8],
        component_sha256: &str,
    ) -> Result<(Component, ArtifactOutcome), WasmError> {
        let name = format!("{component_sha256}-{}{SUFFIX}", self.engine_key);
        let mut manifest = lock(&self.manifest);
        let mut refused = false;
        if let Some(dir) = self.own_dir() {
            if !manifest.files.contains_key(&name) && dir.path().join(&name).exists() {
                // Perhaps another worker sharing the directory wrote it since this one started.
                let on_disk = read_manifest(&dir);
                if let Some(entry) = on_disk.files.get(&name) {
                    manifest.files.insert(name.clone(), entry.clone());
                }
            }
            let vouched = manifest.files.get(&name).map(|e| Vouched { checksum: &e.checksum, engine: &e.engine });
            match aot::load(engine, &self.engine_key, &dir, &name, vouched) {
                Ok(component) => return Ok((component, ArtifactOutcome::Loaded)),
                Err(Refusal::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    if manifest.files.remove(&name).is_some() {
                        self.save(&dir, &manifest);
                    }
                }
                Err(Refusal::Unknown) if !dir.path().join(&name).exists() => {}
                Err(reason) => {
                    tracing::warn!(extractor, path = %dir.path().join(&name).display(), reason = %reason, "Refused a compiled artifact; compiling the component again.");
                    self.remove(&dir, &name);
                    manifest.files.remove(&name);
                    self.save(&dir, &manifest);
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    refused = true;
                }
            }
        }
        let rejected_before = {
            let mut at_open = lock(&self.rejected_at_open);
            let found = at_open.iter().any(|c| c == component_sha256);
            at_open.retain(|c| c != component_sha256);
            found
        };
        let component = Component::from_binary(engine, wasm)
            .map_err(|e| WasmError::Compile { extractor: extractor.to_owned(), source: WasmError::boxed(e) })?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        self.store(&mut manifest, extractor, &name, &component, component_sha256);
        let outcome = if refused || rejected_before { ArtifactOutcome::Rebuilt } else { ArtifactOutcome::Compiled };
        Ok((component, outcome))
    }

    /// The directory, if it is usable and still riptide's own (checked again on every load: a
    /// permission change after start is noticed at the next load).
    fn own_dir(&self) -> Option<OwnDir> {
        if !self.usable {
            return None;
        }
        match OwnDir::check(&self.root) {
            Ok(dir) => Some(dir),
            Err(reason) => {
                tracing::warn!(dir = %self.root.display(), reason = %reason, "AOT artifact directory is no longer riptide's own; compiling in memory.");
                None
            }
        }
    }

    /// Writes a freshly compiled component's artifact (temporary file, then rename) and vouches
    /// for it in the manifest. A failed write is logged once and the store stops writing: the
    /// worker goes on with the in-memory component.
    fn store(
        &self,
        manifest: &mut Manifest,
        extractor: &str,
        name: &str,
        component: &Component,
        component_sha256: &str,
    ) {
        if self.read_only.load(Ordering::Relaxed) {
            return;
        }
        let Some(dir) = self.own_dir() else { return };
        let bytes = match component.serialize() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(extractor, error = %e, "Could not serialize a compiled component; it is kept in memory only.");
                return;
            }
        };
        let path = dir.path().join(name);
        let tmp = dir.path().join(format!("{name}.{}.tmp", std::process::id()));
        let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            self.read_only.store(true, Ordering::Relaxed);
            tracing::warn!(extractor, dir = %dir.path().display(), error = %e, "AOT artifact directory is not writable; components are compiled in memory.");
            return;
        }
        let entry = Entry {
            checksum: checksum_hex(&bytes),
            component_sha256: component_sha256.to_owned(),
            engine: self.engine_key.clone(),
        };
        manifest.files.insert(name.to_owned(), entry);
        self.save(&dir, manifest);
    }

    /// The artifact file of a component for this engine, if one is stored.
    pub(crate) fn file_of(&self, component_sha256: &str) -> Option<PathBuf> {
        let name = format!("{component_sha256}-{}{SUFFIX}", self.engine_key);
        lock(&self.manifest).files.contains_key(&name).then(|| self.root.join(name))
    }

    /// Artifacts refused so far (at open or at a load).
    pub(crate) fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// Compiles done by this store so far.
    pub(crate) fn compiles(&self) -> usize {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Removes one artifact file; true if it is gone. A failure (read-only directory) is logged:
    /// the file stays, and is refused again at the next load.
    fn remove(&self, dir: &OwnDir, name: &str) -> bool {
        let path = dir.path().join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Could not remove a refused artifact.");
                false
            }
        }
    }

    /// Writes the manifest atomically (temporary file, then rename); a failure is logged and
    /// costs only a rebuild at the next start (an artifact the manifest lacks is refused).
    fn save(&self, dir: &OwnDir, manifest: &Manifest) {
        if self.read_only.load(Ordering::Relaxed) {
            return;
        }
        let path = dir.path().join(MANIFEST);
        let tmp = dir.path().join(format!("{MANIFEST}.{}.tmp", std::process::id()));
        // Entries another worker sharing the directory saved meanwhile are kept (when their
        // file is still there); this process's own entries win.
        let mut files = read_manifest(dir).files;
        files.retain(|name, _| dir.path().join(name).exists());
        files.extend(manifest.files.iter().map(|(k, v)| (k.clone(), v.clone())));
        let json = serde_json::to_vec_pretty(&Manifest { version: MANIFEST_VERSION, files });
        // Serialising a map of strings cannot fail; an empty manifest would only cost rebuilds.
        let written = std::fs::write(&tmp, json.unwrap_or_default()).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "Could not save the AOT artifact manifest.");
        }
    }
}

/// The manifest, if it is this version's and riptide's own file; otherwise an empty one (every
/// artifact then rebuilds).
fn read_manifest(dir: &OwnDir) -> Manifest {
    let path = dir.path().join(MANIFEST);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(_) => return Manifest::default(),
    };
    if let Err(reason) = aot::check_owner(&path, &meta)
        .and_then(|()| if meta.is_file() { Ok(()) } else { Err(Refusal::NotADirectory(path.clone())) })
    {
        tracing::warn!(path = %path.display(), reason = %reason, "Ignored an AOT manifest that is not riptide's own; its artifacts are rebuilt.");
        return Manifest::default();
    }
    let parsed = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
    match parsed {
        Some(m) if m.version == MANIFEST_VERSION => m,
        _ => Manifest::default(),
    }
}

/// Names of the artifact files in `dir` (not temporary files: another worker sharing the
/// directory may be writing one).
fn artifact_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(SUFFIX))
        .collect();
    out.sort();
    out
}

/// The component SHA-256 an artifact file name starts with.
fn component_of(name: &str) -> Option<String> {
    name.split_once('-').map(|(sha, _)| sha.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_artifact_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ab-01.cwasm", "ab-01.cwasm.7.tmp", "notes.txt", MANIFEST] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(artifact_names(dir.path()), vec!["ab-01.cwasm".to_owned()]);
        assert_eq!(component_of("ab-01.cwasm").as_deref(), Some("ab"));
    }
}

//! The one place riptide runs machine code it did not compile in this process: a compiled (AOT)
//! component artifact, loaded by `Component::deserialize` instead of compiling (a cold lease
//! then costs microseconds, not the ~0.5 s of a compile). wasmtime trusts such bytes blindly (a
//! crafted artifact is arbitrary native code), so this is the workspace's only `unsafe` call,
//! allowed on one private function and reached only through [`load`], which first proves the
//! conditions its `SAFETY` comment relies on:
//!
//! 1. the directory is riptide's own ([`OwnDir`]): owned by the running user, neither group- nor
//!    world-writable, so no other user can have put or changed a file in it;
//! 2. the manifest riptide wrote when it serialized the artifact (`artifact.rs`, from
//!    `Component::serialize` of its own compile) names this engine's settings
//!    ([`engine_key`]) and the checksum of the file (XXH3-128: see `digest.rs` for why a
//!    non-cryptographic checksum suffices once (1) holds);
//! 3. the bytes are read into memory once, hashed, and those same bytes are deserialized, so
//!    nothing can change between the check and the load.
//!
//! Any mismatch is a [`Refusal`]; the caller logs it, removes the file and compiles instead. It
//! owns these checks and the call; it must not decide where artifacts live, write them or
//! compile (`artifact.rs`).

use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::digest::checksum_hex;

/// Mode bits that let someone other than the owner create, rename or delete files.
const OTHERS_WRITE: u32 = 0o022;

/// Why an artifact was not loaded. Every one means "compile instead".
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// The directory (or file) belongs to another user.
    #[error("{path} is owned by uid {owner}, not by this process's uid {me}")]
    NotOurs {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The running user.
        me: u32,
    },
    /// The directory can be written by its group or by everyone.
    #[error("{path} is writable by others (mode {mode:o})")]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The manifest names no artifact for this file (a file riptide did not write).
    #[error("no manifest entry (not written by riptide)")]
    Unknown,
    /// The manifest says the artifact was compiled by an engine with other settings.
    #[error("compiled for engine {found}, this engine is {expected}")]
    ForeignEngine {
        /// The engine key in the manifest.
        found: String,
        /// This engine's key.
        expected: String,
    },
    /// The bytes do not hash to the manifest's checksum (corrupt, truncated or rewritten).
    #[error("checksum mismatch: manifest says {expected}, the {len} bytes read hash to {found}")]
    Checksum {
        /// The manifest's checksum.
        expected: String,
        /// Checksum of what was read.
        found: String,
        /// Bytes read.
        len: usize,
    },
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// wasmtime refused the bytes (its own version and settings check in the artifact header).
    #[error("wasmtime refused the artifact: {0}")]
    Wasmtime(String),
}

/// A directory proven to be riptide's own at the time of the check (see the module doc).
#[derive(Debug)]
pub(crate) struct OwnDir {
    path: PathBuf,
}

impl OwnDir {
    /// Checks that `path` is a directory owned by the running user and not writable by its group
    /// or others.
    pub(crate) fn check(path: &Path) -> Result<OwnDir, Refusal> {
        let meta = std::fs::metadata(path).map_err(|source| Refusal::Io { path: path.to_path_buf(), source })?;
        if !meta.is_dir() {
            return Err(Refusal::NotADirectory(path.to_path_buf()));
        }
        check_owner(path, &meta)?;
        Ok(OwnDir { path: path.to_path_buf() })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Owned by the running user and not writable by group or others (a directory, or a file that
/// riptide reads trusting its content, like the manifest).
pub(crate) fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), Refusal> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Refusal::NotOurs { path: path.to_path_buf(), owner: meta.uid(), me });
    }
    let mode = meta.mode() & 0o7777;
    if mode & OTHERS_WRITE != 0 {
        return Err(Refusal::Writable { path: path.to_path_buf(), mode });
    }
    Ok(())
}

/// This engine's compile settings as a short hex key: wasmtime's own compatibility hash (target,
/// Cranelift flags, tunables such as memory reservation, features such as fuel and epochs, and
/// wasmtime's version). Artifacts are written and looked up under it.
pub(crate) fn engine_key(engine: &Engine) -> String {
    // SipHash with fixed keys: stable for one build of riptide; a different Rust release may
    // hash differently, which only costs one recompile.
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// What riptide's manifest says about one artifact file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vouched<'a> {
    /// Checksum (`digest::checksum_hex`) of the file as riptide wrote it.
    pub(crate) checksum: &'a str,
    /// [`engine_key`] of the engine that compiled it.
    pub(crate) engine: &'a str,
}

/// Loads the artifact `file` in `dir` if, and only if, every condition of the module doc holds.
/// `engine_key` is [`engine_key`] of `engine`, computed once by the caller.
pub(crate) fn load(
    engine: &Engine,
    engine_key: &str,
    dir: &OwnDir,
    file: &str,
    vouched: Option<Vouched<'_>>,
) -> Result<Component, Refusal> {
    let vouched = vouched.ok_or(Refusal::Unknown)?;
    if vouched.engine != engine_key {
        return Err(Refusal::ForeignEngine { found: vouched.engine.to_owned(), expected: engine_key.to_owned() });
    }
    let path = dir.path.join(file);
    // Read once: the bytes hashed below are the bytes deserialized (no second read to race).
    let bytes = std::fs::read(&path).map_err(|source| Refusal::Io { path, source })?;
    let found = checksum_hex(&bytes);
    if found != vouched.checksum {
        return Err(Refusal::Checksum { expected: vouched.checksum.to_owned(), found, len: bytes.len() });
    }
    deserialize(engine, &bytes)
}

/// The workspace's one `unsafe` call.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Component, Refusal> {
    // SAFETY: `Component::deserialize` requires bytes produced by wasmtime's own `serialize`
    // (or `precompile_component`) and not modified since; it checks the version and the engine
    // settings itself, not the code. `load`, the only caller, passes only bytes that (1) sit in
    // a directory that only this user can write (`OwnDir`, checked this load), (2) hash to the
    // checksum that riptide recorded in its manifest when it wrote them from
    // `Component::serialize` of its own compile for an engine with the same `engine_key`, and
    // (3) are the very bytes just hashed, held in memory (no file is read again). A file that
    // anyone else wrote or changed fails (1) or (2) and is compiled instead.
    unsafe { Component::deserialize(engine, bytes) }.map_err(|e| Refusal::Wasmtime(format!("{e:#}")))
}

//! The host side of `wit/extractor.wit`: the generated bindings, the check that a component
//! implements the contract (exports and `info().contract-version`), and conversion between the
//! WIT records and `riptide_extractor`'s types. It must not manage instances (`pool/`).

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use super::engine::Host;
use super::error::WasmError;

wasmtime::component::bindgen!({ world: "extractor", path: "wit" });

use riptide::extractor::types as wit;

/// Exports the contract requires, with their parameter names, as the WIT spells them.
const EXPECTED: &[(&str, &[&str])] = &[("extract", &["html", "url", "options"]), ("info", &[])];

/// What a validated component said about itself.
#[derive(Debug, Clone)]
pub(crate) struct ComponentInfo {
    pub(crate) name: String,
    pub(crate) version: String,
}

/// The linker every component is linked with: WASI with nothing granted (see `engine::new_store`).
/// Built once per pool: defining WASI's functions costs more than the rest of a cold lease.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<Host>, WasmError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| WasmError::Engine(WasmError::boxed(e)))?;
    Ok(linker)
}

/// Links `component` with `linker` and checks it against the contract: export names and
/// shapes, then the generated bindings' full type check (`check_info` then calls `info()`).
pub(crate) fn link(
    engine: &Engine,
    linker: &Linker<Host>,
    extractor: &str,
    component: &Component,
) -> Result<ExtractorPre<Host>, WasmError> {
    let contract = |detail: String| WasmError::Contract { extractor: extractor.to_owned(), detail };
    check_exports(engine, component).map_err(contract)?;
    let pre = linker.instantiate_pre(component).map_err(|e| contract(format!("imports: {}", e)))?;
    ExtractorPre::new(pre).map_err(|e| contract(chain(&e)))
}

/// Calls `info()` in a throwaway instance and checks the contract version.
pub(crate) fn check_info(
    extractor: &str,
    pre: &ExtractorPre<Host>,
    mut store: Store<Host>,
) -> Result<ComponentInfo, WasmError> {
    let instantiate = |e| WasmError::Instantiate { extractor: extractor.to_owned(), source: WasmError::boxed(e) };
    let instance = pre.instantiate(&mut store).map_err(instantiate)?;
    let info = instance.call_info(&mut store).map_err(instantiate)?;
    check_version(extractor, info.contract_version)?;
    Ok(ComponentInfo { name: info.name, version: info.version })
}

/// Refuses a contract version this host does not speak.
pub(crate) fn check_version(extractor: &str, found: u32) -> Result<(), WasmError> {
    let expected = riptide_extractor::CONTRACT_VERSION;
    if found == expected {
        return Ok(());
    }
    Err(WasmError::Contract {
        extractor: extractor.to_owned(),
        detail: format!("info() reports contract version {found}, this worker speaks {expected}"),
    })
}

/// Export names, kinds and parameter names, so the error says which export differs and how.
fn check_exports(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let mut problems = Vec::new();
    for (name, params) in EXPECTED {
        let found = ty.get_export(engine, name).map(|export| export.ty);
        match found {
            None => problems.push(format!("export `{name}` is missing")),
            Some(ComponentItem::ComponentFunc(f)) => {
                let got: Vec<&str> = f.params().map(|(n, _)| n).collect();
                if got != *params {
                    problems.push(format!(
                        "`{name}` takes ({}), the contract says ({})",
                        got.join(", "),
                        params.join(", ")
                    ));
                }
            }
            Some(_) => problems.push(format!("export `{name}` is not a function")),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// The error and its causes on one line (wasmtime puts the useful part in the causes).
fn chain(e: &wasmtime::Error) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
}

/// The job's options in WIT form.
pub(crate) fn to_wit_options(options: &riptide_extractor::Options, max_input_bytes: u64) -> wit::Options {
    wit::Options {
        mode: options.mode.as_str().to_owned(),
        keep_selectors: options.keep_selectors.clone(),
        drop_selectors: options.drop_selectors.clone(),
        max_input_bytes: (options.max_input_bytes as u64).min(max_input_bytes),
    }
}

/// The guest's typed error as the core's.
pub(crate) fn from_wit_error(e: wit::ExtractError) -> riptide_extractor::ExtractError {
    use riptide_extractor::ExtractError as E;
    match e {
        wit::ExtractError::InvalidInput(reason) => E::InvalidInput { reason },
        wit::ExtractError::TooLarge(l) => E::TooLarge { size: l.size, limit: l.limit },
        wit::ExtractError::UnsupportedMode(mode) => E::UnsupportedMode { mode },
        wit::ExtractError::Internal(reason) => E::Internal { reason },
    }
}

/// The guest's document as the core's.
pub(crate) fn from_wit_document(d: wit::Document) -> riptide_extractor::Document {
    use riptide_extractor as core;
    let kind = |k| match k {
        wit::MediaKind::Image => core::MediaKind::Image,
        wit::MediaKind::Video => core::MediaKind::Video,
        wit::MediaKind::Audio => core::MediaKind::Audio,
    };
    core::Document {
        url: d.url,
        title: d.title,
        byline: d.byline,
        published: d.published,
        site_name: d.site_name,
        description: d.description,
        language: d.language,
        text: d.text,
        markdown: d.markdown,
        links: d.links.into_iter().map(|l| core::Link { url: l.url, text: l.text, rel: l.rel }).collect(),
        media: d.media.into_iter().map(|m| core::Media { url: m.url, kind: kind(m.kind), alt: m.alt }).collect(),
        word_count: d.word_count,
        reading_time_secs: d.reading_time_secs,
        quality: d.quality,
        extractor_version: d.extractor_version,
    }
}

//! Structure-aware pages: `arbitrary` builds a tree of tags, attributes, entities, text and
//! dates (`riptide_extractor_fuzz::tree`), rendered to HTML, decoded and extracted with the
//! generated URL, mode, selectors and input cap, then held to the invariants of `check`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use riptide_extractor::decode_html;
use riptide_extractor_fuzz::tree::Page;

fuzz_target!(|page: Page| {
    let (bytes, url, options) = page.render();
    let html = decode_html(&bytes, page.http_charset.map(|c| c.label()));
    riptide_extractor_fuzz::check(&html, &url, &options);
});

//! Arbitrary bytes as a page: charset detection (`decode_html`, with an optional "HTTP"
//! charset taken from the first byte), then `extract` in every mode, each result held to the
//! invariants of `riptide_extractor_fuzz::check`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use riptide_extractor::{Mode, Options, decode_html};

/// Labels an HTTP `Content-Type` may carry, chosen by the first input byte when it is below 8.
const HTTP_CHARSETS: [&str; 8] =
    ["utf-8", "iso-8859-1", "windows-1251", "shift_jis", "utf-16le", "gb18030", "", "x-bogus"];

fuzz_target!(|data: &[u8]| {
    let (charset, bytes) = match data.split_first() {
        Some((&first, rest)) if usize::from(first) < HTTP_CHARSETS.len() => {
            (Some(HTTP_CHARSETS[usize::from(first)]), rest)
        }
        _ => (None, data),
    };
    let html = decode_html(bytes, charset);
    for mode in Mode::ALL {
        let options = Options { mode, ..Options::default() };
        riptide_extractor_fuzz::check(&html, "https://fuzz.example/dir/page.html?q=1", &options);
    }
});

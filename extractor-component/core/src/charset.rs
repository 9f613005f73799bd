//! Turning page bytes into text: BOM, then a `<meta charset>` / `http-equiv` declaration in the
//! first 4 KiB (HTML's prescan, simplified), then UTF-8 if the bytes are valid UTF-8, else
//! windows-1252 (what browsers assume for undeclared legacy pages). The host calls this before
//! handing a `&str` to `extract`; an HTTP `Content-Type` charset, when the caller has one, wins.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// How far into the page the `<meta>` charset declaration is looked for (HTML says 1024 bytes;
/// real pages put long `<script>`/`<link>` blocks first, so we look further).
const PRESCAN_BYTES: usize = 4096;

/// Decodes page bytes to text. `http_charset` is the `charset` parameter of the response's
/// Content-Type, if any. Malformed sequences become U+FFFD; this never fails.
pub fn decode_html(bytes: &[u8], http_charset: Option<&str>) -> String {
    let encoding = Encoding::for_bom(bytes)
        .map(|(e, _)| e)
        .or_else(|| http_charset.and_then(|c| Encoding::for_label(c.trim().as_bytes())))
        .or_else(|| prescan(bytes))
        .unwrap_or_else(|| if std::str::from_utf8(bytes).is_ok() { UTF_8 } else { WINDOWS_1252 });
    // A page declaring a UTF-16 charset in ASCII-compatible <meta> is really ASCII-compatible.
    let encoding = encoding.output_encoding();
    let (text, _, _) = encoding.decode(bytes);
    text.into_owned()
}

/// Finds `charset=...` inside a `<meta` tag in the first [`PRESCAN_BYTES`].
fn prescan(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(PRESCAN_BYTES)];
    let mut pos = 0;
    while let Some(off) = memchr::memmem::find(&head[pos..], b"<meta") {
        let start = pos + off + 5;
        let end = memchr::memchr(b'>', &head[start..]).map_or(head.len(), |p| start + p);
        let tag = head[start..end].to_ascii_lowercase();
        if let Some(c) = memchr::memmem::find(&tag, b"charset") {
            let mut v = &tag[c + 7..];
            v = v.trim_ascii_start();
            if let Some(rest) = v.strip_prefix(b"=") {
                let rest = rest.trim_ascii_start();
                let rest = rest.strip_prefix(b"\"").or_else(|| rest.strip_prefix(b"'")).unwrap_or(rest);
                let len = rest
                    .iter()
                    .position(|&b| matches!(b, b'"' | b'\'' | b';' | b' ' | b'/' | b'>'))
                    .unwrap_or(rest.len());
                if let Some(e) = Encoding::for_label(&rest[..len]) {
                    return Some(e);
                }
            }
        }
        pos = end.max(start);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::decode_html;

    #[test]
    fn meta_charset_and_fallbacks() {
        let latin1 = b"<html><head><meta charset=\"iso-8859-1\"></head><body>caf\xe9</body>";
        assert!(decode_html(latin1, None).contains("caf\u{e9}"));
        let equiv = b"<meta http-equiv=Content-Type content='text/html; charset=windows-1251'>\xcf\xf0\xe8";
        assert!(decode_html(equiv, None).ends_with("\u{41f}\u{440}\u{438}"));
        assert_eq!(decode_html("h\u{e9}".as_bytes(), None), "h\u{e9}");
        assert_eq!(decode_html(b"h\xe9", None), "h\u{e9}");
        assert_eq!(decode_html(b"\xef\xbb\xbfok", Some("latin1")), "ok");
    }
}

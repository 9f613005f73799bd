//! The element names the parser and the scorer care about, as a compact enum, plus the HTML
//! categories built from them (void, raw text, block). Unknown names map to [`Tag::Other`] and are
//! compared by name where it matters.

/// Packs up to 16 bytes of a name, lower-cased, into an integer (first byte most significant,
/// so distinct names of different lengths give distinct keys: no name contains a NUL).
fn key(name: &[u8]) -> u128 {
    let mut k = 0u128;
    for &c in name.iter().take(16) {
        k = (k << 8) | u128::from(c.to_ascii_lowercase());
    }
    k
}

macro_rules! tags {
    ($($variant:ident = $name:literal,)*) => {
        /// A known HTML element name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Tag { $($variant,)* Other }

        /// Every known tag with its name packed by [`key`], sorted by key (built once).
        fn tag_table() -> &'static [(u128, Tag)] {
            static TABLE: std::sync::OnceLock<Vec<(u128, Tag)>> = std::sync::OnceLock::new();
            TABLE.get_or_init(|| {
                let mut t = vec![$((key($name.as_bytes()), Tag::$variant),)*];
                t.sort_unstable_by_key(|(k, _)| *k);
                t
            })
        }

        impl Tag {
            /// Looks up an element name (any case). Names are packed into an integer and found by
            /// binary search: this runs for every start and end tag, and string matching showed up
            /// in profiles.
            pub(crate) fn from_name(name: &str) -> Tag {
                let b = name.as_bytes();
                if b.is_empty() || b.len() > 16 {
                    return Tag::Other;
                }
                let k = key(b);
                let table = tag_table();
                table.binary_search_by_key(&k, |(k, _)| *k).map_or(Tag::Other, |i| table[i].1)
            }
        }
    };
}

tags! {
    A = "a", Abbr = "abbr", Address = "address", Applet = "applet", Area = "area", Article = "article",
    Aside = "aside", Audio = "audio", B = "b", Base = "base", Bdi = "bdi", Bdo = "bdo",
    Blockquote = "blockquote", Body = "body", Br = "br", Button = "button", Canvas = "canvas",
    Caption = "caption", Center = "center", Cite = "cite", Code = "code", Col = "col",
    Colgroup = "colgroup", Dd = "dd", Del = "del", Details = "details", Dfn = "dfn", Dialog = "dialog",
    Dir = "dir", Div = "div", Dl = "dl", Dt = "dt", Em = "em", Embed = "embed", Fieldset = "fieldset",
    Figcaption = "figcaption", Figure = "figure", Font = "font", Footer = "footer", Form = "form",
    Frame = "frame", Frameset = "frameset", H1 = "h1", H2 = "h2", H3 = "h3", H4 = "h4", H5 = "h5",
    H6 = "h6", Head = "head", Header = "header", Hgroup = "hgroup", Hr = "hr", Html = "html", I = "i",
    Iframe = "iframe", Img = "img", Input = "input", Ins = "ins", Kbd = "kbd", Keygen = "keygen",
    Label = "label", Legend = "legend", Li = "li", Link = "link", Main = "main", Map = "map",
    Mark = "mark", Math = "math", Menu = "menu", Meta = "meta", Meter = "meter", Nav = "nav",
    Noembed = "noembed", Noframes = "noframes", Noscript = "noscript", Object = "object", Ol = "ol",
    Optgroup = "optgroup", Option = "option", Output = "output", P = "p", Param = "param",
    Picture = "picture", Plaintext = "plaintext", Pre = "pre", Progress = "progress", Q = "q",
    Rp = "rp", Rt = "rt", Ruby = "ruby", S = "s", Samp = "samp", Script = "script",
    Search = "search", Section = "section", Select = "select", Slot = "slot", Small = "small",
    Source = "source", Span = "span", Strike = "strike", Strong = "strong", Style = "style",
    Sub = "sub", Summary = "summary", Sup = "sup", Svg = "svg", Table = "table", Tbody = "tbody",
    Td = "td", Template = "template", Textarea = "textarea", Tfoot = "tfoot", Th = "th",
    Thead = "thead", Time = "time", Title = "title", Tr = "tr", Track = "track", Tt = "tt", U = "u",
    Ul = "ul", Var = "var", Video = "video", Wbr = "wbr", Xmp = "xmp",
}

impl Tag {
    /// Elements that never have children.
    pub(crate) fn is_void(self) -> bool {
        matches!(
            self,
            Tag::Area
                | Tag::Base
                | Tag::Br
                | Tag::Col
                | Tag::Embed
                | Tag::Hr
                | Tag::Img
                | Tag::Input
                | Tag::Keygen
                | Tag::Link
                | Tag::Meta
                | Tag::Param
                | Tag::Source
                | Tag::Track
                | Tag::Wbr
        )
    }

    /// Elements whose content is not markup (read up to the matching end tag). `<noscript>` and
    /// `<template>` hold markup (scripting off, as the extractor runs no scripts); both stay
    /// invisible to rendering (`classify::invisible`).
    pub(crate) fn is_raw_text(self) -> bool {
        matches!(
            self,
            Tag::Script
                | Tag::Style
                | Tag::Textarea
                | Tag::Title
                | Tag::Xmp
                | Tag::Iframe
                | Tag::Noembed
                | Tag::Noframes
                | Tag::Plaintext
        )
    }

    /// Start tags that close an open `<p>` (HTML5 "in body" rules, simplified).
    pub(crate) fn closes_p(self) -> bool {
        matches!(
            self,
            Tag::Address
                | Tag::Article
                | Tag::Aside
                | Tag::Blockquote
                | Tag::Center
                | Tag::Details
                | Tag::Dialog
                | Tag::Dir
                | Tag::Div
                | Tag::Dl
                | Tag::Dd
                | Tag::Dt
                | Tag::Fieldset
                | Tag::Figcaption
                | Tag::Figure
                | Tag::Footer
                | Tag::Form
                | Tag::H1
                | Tag::H2
                | Tag::H3
                | Tag::H4
                | Tag::H5
                | Tag::H6
                | Tag::Header
                | Tag::Hgroup
                | Tag::Hr
                | Tag::Li
                | Tag::Main
                | Tag::Menu
                | Tag::Nav
                | Tag::Ol
                | Tag::P
                | Tag::Pre
                | Tag::Search
                | Tag::Section
                | Tag::Summary
                | Tag::Table
                | Tag::Ul
        )
    }

    /// Elements rendered as their own block (a line break before and after in text).
    pub(crate) fn is_block(self) -> bool {
        self.closes_p()
            || matches!(
                self,
                Tag::Html
                    | Tag::Body
                    | Tag::Caption
                    | Tag::Tr
                    | Tag::Td
                    | Tag::Th
                    | Tag::Thead
                    | Tag::Tbody
                    | Tag::Tfoot
                    | Tag::Legend
                    | Tag::Option
                    | Tag::Br
                    | Tag::Noscript
                    | Tag::Video
                    | Tag::Audio
                    | Tag::Canvas
                    | Tag::Iframe
                    | Tag::Textarea
                    | Tag::Select
            )
    }

    /// Headings `h1`..`h6`: their level, else `None`.
    pub(crate) fn heading_level(self) -> Option<u8> {
        match self {
            Tag::H1 => Some(1),
            Tag::H2 => Some(2),
            Tag::H3 => Some(3),
            Tag::H4 => Some(4),
            Tag::H5 => Some(5),
            Tag::H6 => Some(6),
            _ => None,
        }
    }

    /// Elements that stop the search for an open `<li>`/`<dd>` to close ("special" minus
    /// address/div/p in HTML5 terms, reduced to what matters for lists).
    pub(crate) fn is_list_scope_boundary(self) -> bool {
        matches!(
            self,
            Tag::Ul
                | Tag::Ol
                | Tag::Dl
                | Tag::Menu
                | Tag::Table
                | Tag::Td
                | Tag::Th
                | Tag::Body
                | Tag::Html
                | Tag::Blockquote
                | Tag::Article
                | Tag::Section
                | Tag::Aside
                | Tag::Nav
                | Tag::Main
                | Tag::Header
                | Tag::Footer
                | Tag::Figure
        )
    }
}

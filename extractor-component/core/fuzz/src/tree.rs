//! A structure-aware page generator: `arbitrary` builds a small tree of tags, attributes,
//! entities, text and dates (in `<time datetime>`, `<meta>` and JSON-LD), plus charset
//! declarations, which [`Page::render`] turns into HTML. Byte-level mutation rarely produces a
//! well-formed `<script type="application/ld+json">` or a date that gets past the first digit
//! checks; this reaches the metadata, date, URL-resolution and charset paths directly.
//!
//! It only renders: no assertion lives here (see `check` in the crate root).

use arbitrary::Arbitrary;
use riptide_extractor::{Mode, Options};

/// One generated page and how to extract it.
#[derive(Debug, Arbitrary)]
pub struct Page {
    /// `<html lang>` value, when present.
    pub lang: Option<Word>,
    /// `<head>` children.
    pub head: Vec<HeadItem>,
    /// `<body>` children.
    pub body: Vec<Node>,
    /// Emit `<html><head>...</head><body>` around the parts, or leave the parser to infer them.
    pub explicit_structure: bool,
    /// The page URL handed to `extract`.
    pub url: PageUrl,
    /// Extraction mode, as an index into `Mode::ALL`.
    pub mode: u8,
    /// Keep and drop selectors (often outside the supported subset on purpose).
    pub keep: Vec<Selector>,
    /// Drop selectors.
    pub drop: Vec<Selector>,
    /// A small input cap now and then, to exercise `TooLarge`.
    pub small_cap: Option<u16>,
    /// A charset the "HTTP header" declares, passed to `decode_html`.
    pub http_charset: Option<Charset>,
}

/// Items of `<head>`.
#[derive(Debug, Arbitrary)]
pub enum HeadItem {
    /// `<title>`.
    Title(Text),
    /// `<meta charset=...>`.
    MetaCharset(Charset),
    /// `<meta http-equiv=Content-Type content="text/html; charset=...">`.
    HttpEquiv(Charset),
    /// `<meta name|property=... content=...>` with a date, a word or text.
    Meta(MetaKey, MetaValue),
    /// `<script type="application/ld+json">`.
    JsonLd(JsonLd),
    /// `<base href>` (the core ignores it; the parser must not choke on it).
    Base(Href),
    /// `<link rel href>`.
    Link(Word, Href),
}

/// Names of meta tags the metadata pass reads.
#[derive(Debug, Arbitrary)]
pub enum MetaKey {
    /// A known name.
    Known(MetaName),
    /// Anything.
    Other(String),
}

/// Meta names the core looks for.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum MetaName {
    ArticlePublishedTime,
    OgPublishedTime,
    DatePublished,
    DcDate,
    Date,
    Author,
    OgTitle,
    OgSiteName,
    Description,
    OgDescription,
    OgImage,
    OgLocale,
    ContentLanguage,
    TwitterTitle,
}

impl MetaName {
    fn as_str(self) -> &'static str {
        match self {
            MetaName::ArticlePublishedTime => "article:published_time",
            MetaName::OgPublishedTime => "og:published_time",
            MetaName::DatePublished => "datePublished",
            MetaName::DcDate => "dc.date",
            MetaName::Date => "date",
            MetaName::Author => "author",
            MetaName::OgTitle => "og:title",
            MetaName::OgSiteName => "og:site_name",
            MetaName::Description => "description",
            MetaName::OgDescription => "og:description",
            MetaName::OgImage => "og:image",
            MetaName::OgLocale => "og:locale",
            MetaName::ContentLanguage => "content-language",
            MetaName::TwitterTitle => "twitter:title",
        }
    }
}

/// A meta tag's content.
#[derive(Debug, Arbitrary)]
pub enum MetaValue {
    /// A date in one of the forms pages use.
    Date(Date),
    /// A URL reference.
    Href(Href),
    /// Text.
    Text(Text),
}

/// A JSON-LD block: a well-formed object (possibly nested in `@graph` or an array), or raw text.
#[derive(Debug, Arbitrary)]
pub enum JsonLd {
    /// A well-formed Article-like object.
    Article {
        /// `@type`.
        kind: Word,
        /// `headline`.
        headline: Option<Text>,
        /// `datePublished`.
        date: Option<Date>,
        /// `author`: a string, an object or an array of them.
        author: Vec<Text>,
        /// `articleBody`.
        body: Option<Text>,
        /// `inLanguage`.
        language: Option<Word>,
        /// Wrapping: 0 bare, 1 in an array, 2 in `@graph`, more: nested that deep in arrays.
        wrap: u8,
    },
    /// Whatever text (truncated JSON, `</script>` inside, comments).
    Raw(String),
}

/// Body content.
#[derive(Debug, Arbitrary)]
pub enum Node {
    /// An element with attributes and children.
    Element {
        /// The tag.
        tag: Tag,
        /// Its attributes.
        attrs: Vec<Attr>,
        /// Its children.
        children: Vec<Node>,
        /// How (or whether) it is closed.
        close: Close,
    },
    /// Text.
    Text(Text),
    /// `<time datetime=...>text</time>`.
    Time(Date, Text),
    /// `<a href>text</a>`.
    Link(Href, Text),
    /// `<img src alt>`.
    Image(Href, Option<Text>),
    /// `<!-- ... -->`, sometimes unterminated.
    Comment(String, bool),
    /// `count` copies of the same open tag, then the node, unclosed: deep nesting cheaply.
    Deep {
        /// The repeated tag.
        tag: Tag,
        /// How many (capped at 2000 when rendered).
        count: u16,
        /// What sits at the bottom.
        inner: Box<Node>,
    },
    /// `count` copies of a node side by side (capped at 300 when rendered).
    Repeat(u16, Box<Node>),
    /// Raw markup, unescaped.
    Raw(String),
}

/// How an element ends.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Close {
    /// `</tag>`.
    Normal,
    /// Never closed.
    Unclosed,
    /// `<tag/>` style (children still follow, as in real broken pages).
    SelfClosing,
    /// Closed with another tag's end tag.
    Mismatched(Tag),
}

/// Tags the parser and scorer treat specially, plus any name.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Tag {
    Html,
    Head,
    Body,
    Div,
    P,
    Span,
    A,
    Article,
    Section,
    Main,
    Header,
    Footer,
    Nav,
    Aside,
    H1,
    H2,
    H3,
    Ul,
    Ol,
    Li,
    Table,
    Tr,
    Td,
    Th,
    Pre,
    Code,
    Blockquote,
    B,
    I,
    Em,
    Br,
    Hr,
    Img,
    Picture,
    Source,
    Video,
    Audio,
    Figure,
    Figcaption,
    Script,
    Style,
    Noscript,
    Template,
    Textarea,
    Title,
    Svg,
    Math,
    Iframe,
    Form,
    Select,
    Option,
    Time,
    Meta,
    Plaintext,
    Xmp,
    Custom(u8),
}

impl Tag {
    fn name(self) -> String {
        let s = match self {
            Tag::Html => "html",
            Tag::Head => "head",
            Tag::Body => "body",
            Tag::Div => "div",
            Tag::P => "p",
            Tag::Span => "span",
            Tag::A => "a",
            Tag::Article => "article",
            Tag::Section => "section",
            Tag::Main => "main",
            Tag::Header => "header",
            Tag::Footer => "footer",
            Tag::Nav => "nav",
            Tag::Aside => "aside",
            Tag::H1 => "h1",
            Tag::H2 => "h2",
            Tag::H3 => "h3",
            Tag::Ul => "ul",
            Tag::Ol => "ol",
            Tag::Li => "li",
            Tag::Table => "table",
            Tag::Tr => "tr",
            Tag::Td => "td",
            Tag::Th => "th",
            Tag::Pre => "pre",
            Tag::Code => "code",
            Tag::Blockquote => "blockquote",
            Tag::B => "b",
            Tag::I => "i",
            Tag::Em => "em",
            Tag::Br => "br",
            Tag::Hr => "hr",
            Tag::Img => "img",
            Tag::Picture => "picture",
            Tag::Source => "source",
            Tag::Video => "video",
            Tag::Audio => "audio",
            Tag::Figure => "figure",
            Tag::Figcaption => "figcaption",
            Tag::Script => "script",
            Tag::Style => "style",
            Tag::Noscript => "noscript",
            Tag::Template => "template",
            Tag::Textarea => "textarea",
            Tag::Title => "title",
            Tag::Svg => "svg",
            Tag::Math => "math",
            Tag::Iframe => "iframe",
            Tag::Form => "form",
            Tag::Select => "select",
            Tag::Option => "option",
            Tag::Time => "time",
            Tag::Meta => "meta",
            Tag::Plaintext => "plaintext",
            Tag::Xmp => "xmp",
            Tag::Custom(n) => return format!("x-{n}"),
        };
        s.to_owned()
    }
}

/// An attribute, in one of the quoting styles.
#[derive(Debug, Arbitrary)]
pub struct Attr {
    /// Name.
    pub name: AttrName,
    /// Value, absent for a bare attribute.
    pub value: Option<AttrValue>,
    /// 0 double quotes, 1 single, 2 none.
    pub quote: u8,
}

/// Attribute names the core reads.
#[derive(Debug, Arbitrary)]
pub enum AttrName {
    Class,
    Id,
    Href,
    Src,
    Srcset,
    DataSrc,
    Rel,
    Role,
    Lang,
    Itemprop,
    Property,
    Name,
    Content,
    Datetime,
    Alt,
    Hidden,
    Style,
    Charset,
    Type,
    AriaHidden,
    Other(String),
}

impl AttrName {
    fn name(&self) -> &str {
        match self {
            AttrName::Class => "class",
            AttrName::Id => "id",
            AttrName::Href => "href",
            AttrName::Src => "src",
            AttrName::Srcset => "srcset",
            AttrName::DataSrc => "data-src",
            AttrName::Rel => "rel",
            AttrName::Role => "role",
            AttrName::Lang => "lang",
            AttrName::Itemprop => "itemprop",
            AttrName::Property => "property",
            AttrName::Name => "name",
            AttrName::Content => "content",
            AttrName::Datetime => "datetime",
            AttrName::Alt => "alt",
            AttrName::Hidden => "hidden",
            AttrName::Style => "style",
            AttrName::Charset => "charset",
            AttrName::Type => "type",
            AttrName::AriaHidden => "aria-hidden",
            AttrName::Other(s) => s,
        }
    }
}

/// Attribute values.
#[derive(Debug, Arbitrary)]
pub enum AttrValue {
    /// A class/id word the classifier weighs.
    Word(Word),
    /// A URL reference.
    Href(Href),
    /// A date.
    Date(Date),
    /// Text with entities.
    Text(Text),
}

/// Words the content classifier and metadata pass react to, or any string.
#[derive(Debug, Arbitrary)]
pub enum Word {
    Known(KnownWord),
    Other(String),
}

/// Class, id, rel, role and type words with a meaning to the core.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum KnownWord {
    Article,
    Content,
    Comment,
    Byline,
    Author,
    Sidebar,
    Nav,
    Footer,
    Hidden,
    Main,
    Share,
    Related,
    Date,
    NewsArticle,
    Graph,
    En,
    DeDe,
    ZhHans,
    LdJson,
}

impl Word {
    fn text(&self) -> String {
        match self {
            Word::Known(k) => match k {
                KnownWord::Article => "article",
                KnownWord::Content => "post-content entry-content",
                KnownWord::Comment => "comment",
                KnownWord::Byline => "byline",
                KnownWord::Author => "author",
                KnownWord::Sidebar => "sidebar",
                KnownWord::Nav => "nav menu",
                KnownWord::Footer => "footer",
                KnownWord::Hidden => "hidden",
                KnownWord::Main => "main",
                KnownWord::Share => "share social",
                KnownWord::Related => "related",
                KnownWord::Date => "date published",
                KnownWord::NewsArticle => "NewsArticle",
                KnownWord::Graph => "WebPage",
                KnownWord::En => "en-US",
                KnownWord::DeDe => "de_DE",
                KnownWord::ZhHans => "zh-Hans",
                KnownWord::LdJson => "application/ld+json",
            }
            .to_owned(),
            Word::Other(s) => s.clone(),
        }
    }
}

/// Text: runs of plain strings, entities and multi-byte characters.
#[derive(Debug, Arbitrary)]
pub struct Text(pub Vec<TextPiece>);

/// A piece of text.
#[derive(Debug, Arbitrary)]
pub enum TextPiece {
    /// Any string (escaped for its context only by `<` → `&lt;` when `escape` is set).
    Plain(String, bool),
    /// A prose sentence, so scoring sees real paragraphs.
    Sentence(u8),
    /// An entity reference.
    Entity(Entity),
    /// A multi-byte character next to ASCII digits, where byte-offset slicing breaks.
    Multibyte(char, u8),
}

/// Entity references, well-formed and not.
#[derive(Debug, Arbitrary)]
pub enum Entity {
    /// `&name;` from a list, with or without the `;`.
    Named(u8, bool),
    /// `&#N;`.
    Decimal(u32),
    /// `&#xN;`.
    Hex(u32),
    /// `&` followed by any string.
    Bogus(String),
}

const NAMED: [&str; 16] = [
    "amp",
    "lt",
    "gt",
    "quot",
    "nbsp",
    "copy",
    "eacute",
    "mdash",
    "hellip",
    "nGt",
    "NotNestedGreaterGreater",
    "euro",
    "ampx",
    "notin",
    "zwj",
    "Aacute",
];

const SENTENCES: [&str; 6] = [
    "The committee met on Tuesday to discuss the new budget proposal for the coming year.",
    "Researchers said the results, published in a peer-reviewed journal, were surprising.",
    "Der Ausschuss hat am Dienstag über den neuen Haushaltsentwurf beraten und abgestimmt.",
    "委员会周二开会讨论了明年的新预算提案，并进行了表决。",
    "По словам исследователей, результаты оказались неожиданными для всех участников.",
    "Share this article on social media. Related posts. Comments (3). Subscribe now!",
];

impl Text {
    fn render(&self, out: &mut String) {
        for piece in &self.0 {
            match piece {
                TextPiece::Plain(s, escape) => {
                    if *escape {
                        out.push_str(&s.replace('&', "&amp;").replace('<', "&lt;"));
                    } else {
                        out.push_str(s);
                    }
                }
                TextPiece::Sentence(i) => {
                    out.push_str(SENTENCES[usize::from(*i) % SENTENCES.len()]);
                    out.push(' ');
                }
                TextPiece::Entity(e) => match e {
                    Entity::Named(i, semi) => {
                        out.push('&');
                        out.push_str(NAMED[usize::from(*i) % NAMED.len()]);
                        if *semi {
                            out.push(';');
                        }
                    }
                    Entity::Decimal(n) => out.push_str(&format!("&#{n};")),
                    Entity::Hex(n) => out.push_str(&format!("&#x{n:x};")),
                    Entity::Bogus(s) => {
                        out.push('&');
                        out.push_str(s);
                    }
                },
                TextPiece::Multibyte(c, digits) => {
                    out.push_str(&format!("{digits}{c}{digits}"));
                }
            }
        }
    }

    fn to_string_raw(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }
}

/// A date, in the forms `dates.rs` knows and broken variants of them.
#[derive(Debug, Arbitrary)]
pub struct Date {
    /// Year (out of range on purpose sometimes).
    pub year: u16,
    /// Month.
    pub month: u8,
    /// Day.
    pub day: u8,
    /// Which written form.
    pub form: DateForm,
    /// Time of day: hour, minute, second.
    pub time: Option<(u8, u8, Option<u8>)>,
    /// Fractional seconds digits.
    pub fraction: Option<u16>,
    /// Zone.
    pub zone: Zone,
    /// A character spliced in at a position (0 = none): `2019-11-€5`.
    pub splice: Option<(u8, char)>,
    /// Trailing text.
    pub tail: String,
}

/// Written forms of a date.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum DateForm {
    /// `YYYY-MM-DD`.
    IsoDash,
    /// `YYYY/MM/DD`.
    IsoSlash,
    /// `YYYY.MM.DD`.
    IsoDot,
    /// `YYYYMMDD`.
    Compact,
    /// `November 19, 2019`.
    MonthFirst,
    /// `19 Nov 2019`.
    DayFirst,
    /// `Tue, 19 Nov 2019 10:00:00 GMT`.
    Rfc2822,
    /// Unpadded numbers: `2019-1-5`.
    Unpadded,
}

/// Time zones after a time.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Zone {
    /// None.
    None,
    /// `Z`.
    Utc,
    /// `+hh:mm` or `-hhmm`, possibly out of range.
    Offset(bool, u8, u8, bool),
    /// A sign followed by letters: `+ab:cd`.
    Garbage(bool, u8),
}

const MONTH_NAMES: [&str; 13] =
    ["January", "Feb", "March", "Apr", "May", "June", "Jul", "August", "Sept", "October", "Nov", "December", "Smarch"];

impl Date {
    /// The date as a page would write it.
    pub fn render(&self) -> String {
        let (y, m, d) = (self.year, self.month, self.day);
        let month_name = MONTH_NAMES[usize::from(m) % MONTH_NAMES.len()];
        let mut s = match self.form {
            DateForm::IsoDash => format!("{y:04}-{m:02}-{d:02}"),
            DateForm::IsoSlash => format!("{y:04}/{m:02}/{d:02}"),
            DateForm::IsoDot => format!("{y:04}.{m:02}.{d:02}"),
            DateForm::Compact => format!("{y:04}{m:02}{d:02}"),
            DateForm::MonthFirst => format!("{month_name} {d}, {y}"),
            DateForm::DayFirst => format!("{d} {month_name} {y}"),
            DateForm::Rfc2822 => format!("Tue, {d} {month_name} {y}"),
            DateForm::Unpadded => format!("{y}-{m}-{d}"),
        };
        if let Some((h, mi, sec)) = self.time {
            s.push(if matches!(self.form, DateForm::IsoSlash) { ' ' } else { 'T' });
            s.push_str(&format!("{h:02}:{mi:02}"));
            if let Some(sec) = sec {
                s.push_str(&format!(":{sec:02}"));
            }
            if let Some(f) = self.fraction {
                s.push_str(&format!(".{f}"));
            }
            match self.zone {
                Zone::None => {}
                Zone::Utc => s.push('Z'),
                Zone::Offset(neg, h, m, colon) => {
                    s.push(if neg { '-' } else { '+' });
                    s.push_str(&format!("{h:02}"));
                    if colon {
                        s.push(':');
                    }
                    s.push_str(&format!("{m:02}"));
                }
                Zone::Garbage(neg, n) => {
                    s.push(if neg { '-' } else { '+' });
                    s.push_str(&"ab:cd€".chars().cycle().take(usize::from(n % 8)).collect::<String>());
                }
            }
        }
        if let Some((at, c)) = self.splice {
            // Splice at a character position, never inside one.
            let at = usize::from(at) % (s.chars().count() + 1);
            let mut chars: Vec<char> = s.chars().collect();
            chars.insert(at, c);
            s = chars.into_iter().collect();
        }
        s.push_str(&self.tail);
        s
    }
}

/// URL references, relative and absolute.
#[derive(Debug, Arbitrary)]
pub enum Href {
    /// `path`, relative.
    Relative(String),
    /// `../` repeated, then a path.
    DotDot(u8, String),
    /// `/path?query#fragment`.
    Rooted(String, Option<String>, Option<String>),
    /// `//host/path`.
    ProtocolRelative(String),
    /// `scheme:rest` with a scheme from the list or any.
    Scheme(u8, String),
    /// `#fragment`.
    Fragment(String),
    /// Whitespace and control characters around a path.
    Padded(String),
}

const SCHEMES: [&str; 8] = ["https", "http", "javascript", "mailto", "data", "ftp", "HTTPS", "tel"];

impl Href {
    fn render(&self) -> String {
        match self {
            Href::Relative(p) => p.clone(),
            Href::DotDot(n, p) => format!("{}{p}", "../".repeat(usize::from(*n % 64))),
            Href::Rooted(p, q, f) => {
                let mut s = format!("/{p}");
                if let Some(q) = q {
                    s.push('?');
                    s.push_str(q);
                }
                if let Some(f) = f {
                    s.push('#');
                    s.push_str(f);
                }
                s
            }
            Href::ProtocolRelative(h) => format!("//{h}"),
            Href::Scheme(i, rest) => format!("{}:{rest}", SCHEMES[usize::from(*i) % SCHEMES.len()]),
            Href::Fragment(f) => format!("#{f}"),
            Href::Padded(p) => format!(" \t\n{p}\r\n\u{1} "),
        }
    }
}

/// The page URL handed to `extract`.
#[derive(Debug, Arbitrary)]
pub enum PageUrl {
    /// Empty (relative links are dropped).
    Empty,
    /// A plain article URL.
    Article,
    /// With query and fragment.
    WithQuery,
    /// Multi-byte host and path.
    Unicode,
    /// Anything.
    Other(String),
}

impl PageUrl {
    fn as_string(&self) -> String {
        match self {
            PageUrl::Empty => String::new(),
            PageUrl::Article => "https://news.example/2019/11/story.html".to_owned(),
            PageUrl::WithQuery => "http://a.example:8080/dir/page?x=1&y=2#top".to_owned(),
            PageUrl::Unicode => "https://bücher.example/ä/ö?ü=€".to_owned(),
            PageUrl::Other(s) => s.clone(),
        }
    }
}

/// Charset labels, real and not.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Charset {
    Utf8,
    Latin1,
    Windows1251,
    ShiftJis,
    Utf16,
    Gbk,
    Bogus,
}

impl Charset {
    /// The label as a page or header writes it.
    pub fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf-8",
            Charset::Latin1 => "iso-8859-1",
            Charset::Windows1251 => "windows-1251",
            Charset::ShiftJis => "shift_jis",
            Charset::Utf16 => "utf-16le",
            Charset::Gbk => "gbk",
            Charset::Bogus => "x-no-such-charset",
        }
    }
}

/// Selector strings: the supported subset, and outside it.
#[derive(Debug, Arbitrary)]
pub enum Selector {
    /// `tag`.
    Tag(Tag),
    /// `.class`.
    Class(Word),
    /// `#id`.
    Id(Word),
    /// `[attr]` or `[attr=value]`.
    Attribute(AttrName, Option<String>),
    /// Anything (usually unsupported).
    Other(String),
}

impl Selector {
    fn render(&self) -> String {
        match self {
            Selector::Tag(t) => t.name(),
            Selector::Class(w) => format!(".{}", w.text()),
            Selector::Id(w) => format!("#{}", w.text()),
            Selector::Attribute(a, None) => format!("[{}]", a.name()),
            Selector::Attribute(a, Some(v)) => format!("[{}={v}]", a.name()),
            Selector::Other(s) => s.clone(),
        }
    }
}

/// Upper bounds on what one input may expand to, so one iteration stays in milliseconds.
const MAX_DEEP: usize = 2000;
const MAX_REPEAT: usize = 300;
/// Rendering stops adding content past this many bytes: pages stay big enough for the size
/// paths (90,000 `<img>` tags) while one execution stays near a millisecond per KiB.
const MAX_RENDERED: usize = 256 * 1024;
/// Nodes rendered per page at most: nested `Repeat`s of empty text would otherwise loop
/// 300^depth times without growing the output.
const MAX_RENDER_STEPS: usize = 200_000;

impl Page {
    /// The page as bytes (UTF-8 HTML), the page URL and the options to extract it with.
    pub fn render(&self) -> (Vec<u8>, String, Options) {
        let mut out = String::new();
        if self.explicit_structure {
            out.push_str("<!DOCTYPE html><html");
            if let Some(lang) = &self.lang {
                push_attr(&mut out, "lang", &lang.text(), 0);
            }
            out.push_str("><head>");
        }
        for item in &self.head {
            render_head(item, &mut out);
        }
        if self.explicit_structure {
            out.push_str("</head><body>");
        }
        let mut steps = MAX_RENDER_STEPS;
        for node in &self.body {
            render_node(node, &mut out, 0, &mut steps);
        }
        if self.explicit_structure {
            out.push_str("</body></html>");
        }
        let mut options = Options {
            mode: Mode::ALL[usize::from(self.mode) % Mode::ALL.len()],
            keep_selectors: self.keep.iter().map(Selector::render).collect(),
            drop_selectors: self.drop.iter().map(Selector::render).collect(),
            ..Options::default()
        };
        if let Some(cap) = self.small_cap {
            options.max_input_bytes = usize::from(cap);
        }
        (out.into_bytes(), self.url.as_string(), options)
    }
}

fn push_attr(out: &mut String, name: &str, value: &str, quote: u8) {
    out.push(' ');
    out.push_str(name);
    out.push('=');
    match quote % 3 {
        0 => {
            out.push('"');
            out.push_str(&value.replace('"', "&quot;"));
            out.push('"');
        }
        1 => {
            out.push('\'');
            out.push_str(&value.replace('\'', "&#39;"));
            out.push('\'');
        }
        _ => out.push_str(value),
    }
}

fn render_head(item: &HeadItem, out: &mut String) {
    match item {
        HeadItem::Title(t) => {
            out.push_str("<title>");
            t.render(out);
            out.push_str("</title>");
        }
        HeadItem::MetaCharset(c) => {
            out.push_str("<meta");
            push_attr(out, "charset", c.label(), 0);
            out.push('>');
        }
        HeadItem::HttpEquiv(c) => {
            out.push_str("<meta http-equiv=Content-Type");
            push_attr(out, "content", &format!("text/html; charset={}", c.label()), 1);
            out.push('>');
        }
        HeadItem::Meta(key, value) => {
            let (attr, name) = match key {
                MetaKey::Known(n) if n.as_str().contains(':') => ("property", n.as_str().to_owned()),
                MetaKey::Known(n) => ("name", n.as_str().to_owned()),
                MetaKey::Other(s) => ("name", s.clone()),
            };
            let content = match value {
                MetaValue::Date(d) => d.render(),
                MetaValue::Href(h) => h.render(),
                MetaValue::Text(t) => t.to_string_raw(),
            };
            out.push_str("<meta");
            push_attr(out, attr, &name, 0);
            push_attr(out, "content", &content, 0);
            out.push('>');
        }
        HeadItem::JsonLd(j) => {
            out.push_str("<script type=\"application/ld+json\">");
            out.push_str(&render_json_ld(j));
            out.push_str("</script>");
        }
        HeadItem::Base(h) => {
            out.push_str("<base");
            push_attr(out, "href", &h.render(), 0);
            out.push('>');
        }
        HeadItem::Link(rel, h) => {
            out.push_str("<link");
            push_attr(out, "rel", &rel.text(), 0);
            push_attr(out, "href", &h.render(), 0);
            out.push('>');
        }
    }
}

fn render_json_ld(j: &JsonLd) -> String {
    use serde_json::{Value, json};
    match j {
        JsonLd::Raw(s) => s.clone(),
        JsonLd::Article { kind, headline, date, author, body, language, wrap } => {
            let mut obj = serde_json::Map::new();
            obj.insert("@context".into(), json!("https://schema.org"));
            obj.insert("@type".into(), Value::String(kind.text()));
            if let Some(h) = headline {
                obj.insert("headline".into(), Value::String(h.to_string_raw()));
            }
            if let Some(d) = date {
                obj.insert("datePublished".into(), Value::String(d.render()));
            }
            let authors: Vec<Value> = author
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    if i % 2 == 0 {
                        json!({"@type": "Person", "name": a.to_string_raw()})
                    } else {
                        Value::String(a.to_string_raw())
                    }
                })
                .collect();
            match authors.len() {
                0 => {}
                1 => {
                    obj.insert("author".into(), authors.into_iter().next().unwrap_or(Value::Null));
                }
                _ => {
                    obj.insert("author".into(), Value::Array(authors));
                }
            }
            if let Some(b) = body {
                obj.insert("articleBody".into(), Value::String(b.to_string_raw()));
            }
            if let Some(l) = language {
                obj.insert("inLanguage".into(), Value::String(l.text()));
            }
            let mut value = Value::Object(obj);
            match wrap {
                0 => {}
                2 => value = json!({"@context": "https://schema.org", "@graph": [value]}),
                n => {
                    for _ in 0..usize::from(*n).min(200) {
                        value = Value::Array(vec![value]);
                    }
                }
            }
            value.to_string()
        }
    }
}

fn render_node(node: &Node, out: &mut String, depth: usize, steps: &mut usize) {
    if out.len() > MAX_RENDERED || depth > 64 || *steps == 0 {
        return;
    }
    *steps -= 1;
    match node {
        Node::Element { tag, attrs, children, close } => {
            let name = tag.name();
            out.push('<');
            out.push_str(&name);
            for a in attrs {
                match &a.value {
                    None => {
                        out.push(' ');
                        out.push_str(a.name.name());
                    }
                    Some(v) => {
                        let value = match v {
                            AttrValue::Word(w) => w.text(),
                            AttrValue::Href(h) => h.render(),
                            AttrValue::Date(d) => d.render(),
                            AttrValue::Text(t) => t.to_string_raw(),
                        };
                        push_attr(out, a.name.name(), &value, a.quote);
                    }
                }
            }
            out.push_str(if matches!(close, Close::SelfClosing) { "/>" } else { ">" });
            for child in children {
                render_node(child, out, depth + 1, steps);
            }
            match close {
                Close::Normal => {
                    out.push_str("</");
                    out.push_str(&name);
                    out.push('>');
                }
                Close::Mismatched(other) => {
                    out.push_str("</");
                    out.push_str(&other.name());
                    out.push('>');
                }
                Close::Unclosed | Close::SelfClosing => {}
            }
        }
        Node::Text(t) => t.render(out),
        Node::Time(d, t) => {
            out.push_str("<time");
            push_attr(out, "datetime", &d.render(), 0);
            out.push('>');
            t.render(out);
            out.push_str("</time>");
        }
        Node::Link(h, t) => {
            out.push_str("<a");
            push_attr(out, "href", &h.render(), 0);
            out.push('>');
            t.render(out);
            out.push_str("</a>");
        }
        Node::Image(h, alt) => {
            out.push_str("<img");
            push_attr(out, "src", &h.render(), 0);
            if let Some(alt) = alt {
                push_attr(out, "alt", &alt.to_string_raw(), 0);
            }
            out.push('>');
        }
        Node::Comment(s, terminated) => {
            out.push_str("<!--");
            out.push_str(s);
            if *terminated {
                out.push_str("-->");
            }
        }
        Node::Deep { tag, count, inner } => {
            let open = format!("<{}>", tag.name());
            for _ in 0..usize::from(*count).min(MAX_DEEP) {
                out.push_str(&open);
            }
            render_node(inner, out, depth + 1, steps);
        }
        Node::Repeat(count, inner) => {
            for _ in 0..usize::from(*count).min(MAX_REPEAT) {
                render_node(inner, out, depth + 1, steps);
                if out.len() > MAX_RENDERED || *steps == 0 {
                    break;
                }
            }
        }
        Node::Raw(s) => out.push_str(s),
    }
}

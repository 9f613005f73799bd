//! Cheap language identification of the extracted text: the dominant script decides for
//! non-Latin scripts (with a few letter tests inside a script), and counts of very common
//! function words decide among Latin-script languages. A few microseconds per page; wrong only on
//! short or mixed texts, where it answers `None` rather than guess.

/// Function words per language (Latin script), chosen to be frequent and distinctive.
const STOPWORDS: &[(&str, &[&str])] = &[
    ("en", &["the", "and", "of", "to", "is", "that", "for", "with", "was", "on", "are", "this", "have", "from"]),
    ("de", &["der", "die", "und", "das", "ist", "nicht", "mit", "sich", "auf", "ein", "eine", "auch", "dem", "den"]),
    ("fr", &["le", "la", "les", "et", "des", "est", "une", "dans", "pour", "qui", "pas", "sur", "du", "au"]),
    ("es", &["el", "los", "las", "del", "que", "por", "una", "con", "para", "es", "como", "pero", "sus", "fue"]),
    ("it", &["il", "della", "che", "di", "per", "una", "sono", "non", "gli", "nel", "alla", "anche", "con", "dei"]),
    ("pt", &["os", "das", "que", "não", "uma", "para", "com", "por", "mais", "dos", "como", "foi", "ao", "são"]),
    ("nl", &["het", "een", "van", "en", "niet", "dat", "zijn", "voor", "met", "ook", "maar", "wordt", "op", "bij"]),
    ("sv", &["och", "att", "det", "som", "är", "för", "på", "med", "inte", "av", "till", "har", "den", "ett"]),
    ("da", &["og", "det", "at", "er", "til", "på", "med", "som", "ikke", "af", "har", "for", "den", "et"]),
    ("pl", &["się", "nie", "na", "jest", "że", "do", "to", "jak", "przez", "oraz", "dla", "już", "od", "są"]),
    ("cs", &["se", "na", "je", "že", "to", "do", "jako", "by", "jsou", "byl", "pro", "také", "od", "ve"]),
    ("tr", &["ve", "bir", "bu", "için", "ile", "da", "de", "olarak", "çok", "daha", "gibi", "olan", "ama", "en"]),
    (
        "id",
        &[
            "yang", "dan", "di", "ini", "itu", "dengan", "untuk", "tidak", "dari", "dalam", "akan", "pada", "juga",
            "ada",
        ],
    ),
    ("ro", &["și", "în", "de", "la", "că", "cu", "pe", "este", "nu", "din", "pentru", "care", "sunt", "mai"]),
    ("fi", &["ja", "on", "että", "ei", "se", "oli", "ovat", "mutta", "kun", "myös", "tai", "joka", "hän", "sen"]),
    ("hu", &["a", "az", "és", "hogy", "nem", "is", "egy", "meg", "van", "volt", "csak", "már", "még", "mint"]),
];

#[derive(Default)]
struct Scripts {
    latin: u32,
    cyrillic: u32,
    ukrainian: u32,
    greek: u32,
    arabic: u32,
    persian: u32,
    hebrew: u32,
    han: u32,
    kana: u32,
    hangul: u32,
    thai: u32,
    devanagari: u32,
}

/// How many characters of the text are looked at.
const SAMPLE_CHARS: usize = 3000;

/// Detects the language of `text`, or `None` when unsure.
pub(crate) fn detect(text: &str) -> Option<&'static str> {
    let mut s = Scripts::default();
    for c in text.chars().take(SAMPLE_CHARS) {
        match c as u32 {
            0x41..=0x5a | 0x61..=0x7a | 0xc0..=0x24f => s.latin += 1,
            0x400..=0x4ff => {
                s.cyrillic += 1;
                if matches!(c, 'і' | 'ї' | 'є' | 'ґ') {
                    s.ukrainian += 1;
                }
            }
            0x370..=0x3ff | 0x1f00..=0x1fff => s.greek += 1,
            0x600..=0x6ff | 0x750..=0x77f => {
                s.arabic += 1;
                if matches!(c, 'پ' | 'چ' | 'ژ' | 'گ' | 'ی') {
                    s.persian += 1;
                }
            }
            0x590..=0x5ff => s.hebrew += 1,
            0x4e00..=0x9fff | 0x3400..=0x4dbf => s.han += 1,
            0x3040..=0x30ff => s.kana += 1,
            0xac00..=0xd7af | 0x1100..=0x11ff => s.hangul += 1,
            0xe00..=0xe7f => s.thai += 1,
            0x900..=0x97f => s.devanagari += 1,
            _ => {}
        }
    }
    let cjk = s.han + s.kana;
    let scripts = [
        (s.latin, "latin"),
        (s.cyrillic, if s.ukrainian * 50 > s.cyrillic { "uk" } else { "ru" }),
        (s.greek, "el"),
        (s.arabic, if s.persian * 20 > s.arabic { "fa" } else { "ar" }),
        (s.hebrew, "he"),
        // Each CJK character carries about a word: weigh them up against Latin letters.
        (cjk * 3, if s.kana * 10 > cjk { "ja" } else { "zh" }),
        (s.hangul * 3, "ko"),
        (s.thai, "th"),
        (s.devanagari, "hi"),
    ];
    let (count, script) = scripts.iter().copied().max_by_key(|(n, _)| *n)?;
    if count < 20 {
        return None;
    }
    if script != "latin" {
        return Some(script);
    }
    latin_language(text)
}

fn latin_language(text: &str) -> Option<&'static str> {
    let mut hits = [0u32; STOPWORDS.len()];
    let mut words = 0;
    for word in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).take(500) {
        words += 1;
        let lower = word.to_lowercase();
        for (i, (_, list)) in STOPWORDS.iter().enumerate() {
            if list.contains(&lower.as_str()) {
                hits[i] += 1;
            }
        }
    }
    let mut order: Vec<usize> = (0..STOPWORDS.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(hits[i]));
    let (best, second) = (hits[order[0]], hits[order[1]]);
    // Enough evidence, and clearly ahead of the runner-up.
    (best >= 4 && best * 10 >= words && best * 2 > second * 3).then(|| STOPWORDS[order[0]].0)
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn detects_common_languages() {
        assert_eq!(detect("The cat sat on the mat and it was happy that the sun was out for the day."), Some("en"));
        assert_eq!(
            detect("Der Hund und die Katze sind nicht auf dem Dach, sondern mit der Maus in dem Haus."),
            Some("de")
        );
        assert_eq!(detect("Le chat est dans la maison et les enfants sont sur le toit pour la journée."), Some("fr"));
        assert_eq!(detect("El perro y los gatos que viven en la casa son para la familia del pueblo."), Some("es"));
        assert_eq!(
            detect("Это очень интересная статья о том, как работает язык и что он значит для людей."),
            Some("ru")
        );
        assert_eq!(detect("هذا نص باللغة العربية عن الأخبار والسياسة والاقتصاد في المنطقة العربية اليوم"), Some("ar"));
        assert_eq!(detect("זהו טקסט בעברית על החדשות והפוליטיקה בישראל ובעולם כולו היום"), Some("he"));
        assert_eq!(detect("今回はそのKindleデスクトップアプリに関する話です。とても困りました。"), Some("ja"));
        assert_eq!(detect("ok"), None);
    }
}

//! Normalising the many ways pages write dates into ISO 8601: `YYYY-MM-DD`, or
//! `YYYY-MM-DDThh:mm[:ss][Z|±hh:mm]` when a time is given. Understands ISO-like strings (with
//! `/` or `.` separators or a space before the time), `November 19, 2019`, `19 Nov 2019`,
//! `Tue, 19 Nov 2019 10:00:00 GMT` and compact `20191119`. Anything else is `None`: a wrong
//! date is worse than none.

// Parses untrusted strings: no indexing that could panic (see the crate root).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

fn valid(y: u32, m: u32, d: u32) -> bool {
    (1900..=2200).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
}

fn month_of(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTHS.iter().position(|m| w.starts_with(m)).map(|p| p as u32 + 1)
}

/// The number written by the ASCII digits `b` (1 to 4 of them), or `None` when any byte is not a
/// digit. Parsing bytes, not `str` slices, keeps a multi-byte character at a fixed offset from
/// ever being split (`2019-11-€5` once panicked here).
fn digits(b: Option<&[u8]>) -> Option<u32> {
    let b = b?;
    if b.is_empty() || b.len() > 4 {
        return None;
    }
    b.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
}

/// Normalises `raw` to ISO 8601, or `None` when it is not recognisably a date.
pub(crate) fn normalize_date(raw: &str) -> Option<String> {
    let s = raw.trim();
    let b = s.as_bytes();
    // ISO-like: YYYY[-/.]MM[-/.]DD...
    let sep = b.get(4).copied();
    if b.len() >= 10
        && digits(b.get(..4)).is_some()
        && matches!(sep, Some(b'-' | b'/' | b'.'))
        && b.get(7).copied() == sep
    {
        let y = digits(b.get(..4))?;
        let m = digits(b.get(5..7))?;
        let d = digits(b.get(8..10))?;
        if !valid(y, m, d) {
            return None;
        }
        let date = format!("{y:04}-{m:02}-{d:02}");
        // Bytes 0..10 are ASCII digits and separators (checked above), so 10 is a char boundary;
        // `get` keeps that an invariant rather than an assumption.
        let rest = s.get(10..).unwrap_or("");
        if let Some(time) = rest.strip_prefix(['T', ' ']).and_then(normalize_time) {
            return Some(format!("{date}T{time}"));
        }
        return Some(date);
    }
    if b.len() == 8 && b.iter().all(u8::is_ascii_digit) {
        let (y, m, d) = (digits(b.get(..4))?, digits(b.get(4..6))?, digits(b.get(6..8))?);
        return valid(y, m, d).then(|| format!("{y:04}-{m:02}-{d:02}"));
    }
    // Words: find a month name, a day (1-31) and a year (4 digits).
    let words: Vec<&str> =
        s.split(|c: char| c.is_whitespace() || c == ',' || c == '.').filter(|w| !w.is_empty()).collect();
    let mut month = None;
    let mut day = None;
    let mut year = None;
    for w in &words {
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        if month.is_none()
            && let Some(m) = month_of(w)
        {
            month = Some(m);
            continue;
        }
        if let Ok(n) = digits.parse::<u32>() {
            if digits.len() == 4 && year.is_none() {
                year = Some(n);
            } else if digits.len() <= 2 && day.is_none() && (1..=31).contains(&n) {
                day = Some(n);
            }
        }
    }
    let (y, m, d) = (year?, month?, day?);
    valid(y, m, d).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// `hh:mm[:ss][.fff][Z|±hh[:]mm]` to `hh:mm:ss` plus the zone; `None` if not a time.
fn normalize_time(t: &str) -> Option<String> {
    let b = t.as_bytes();
    if b.get(2) != Some(&b':') {
        return None;
    }
    let h = digits(b.get(..2))?;
    let mi = digits(b.get(3..5))?;
    let mut i = 5;
    let mut sec = 0;
    if b.get(5) == Some(&b':') && b.len() >= 8 {
        sec = digits(b.get(6..8))?;
        i = 8;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    // Everything before `i` is ASCII (digits, ':' and '.'), so `i` is a char boundary.
    let zone = t.get(i..).unwrap_or("").trim();
    let zone = match zone.as_bytes().first() {
        Some(b'Z' | b'z') => "Z".to_owned(),
        Some(&sign @ (b'+' | b'-')) if zone.len() >= 5 => {
            let z: Vec<u8> = zone.bytes().skip(1).filter(|&c| c != b':').collect();
            let zh = digits(z.get(..2))?;
            let zm = digits(z.get(2..4))?;
            if zh > 23 || zm > 59 {
                return None;
            }
            format!("{}{zh:02}:{zm:02}", char::from(sign))
        }
        _ => String::new(),
    };
    Some(format!("{h:02}:{mi:02}:{sec:02}{zone}"))
}

#[cfg(test)]
mod tests {
    use super::normalize_date;

    #[test]
    fn formats() {
        let n = |s| normalize_date(s);
        assert_eq!(n("2019-11-19").as_deref(), Some("2019-11-19"));
        assert_eq!(n("2019-11-19T08:22:01.000Z").as_deref(), Some("2019-11-19T08:22:01Z"));
        assert_eq!(n("2019-11-19T08:22-0500").as_deref(), Some("2019-11-19T08:22:00-05:00"));
        assert_eq!(n("2019/11/19 08:22").as_deref(), Some("2019-11-19T08:22:00"));
        assert_eq!(n("November 19, 2019").as_deref(), Some("2019-11-19"));
        assert_eq!(n("Tue, 19 Nov 2019 10:00:00 GMT").as_deref(), Some("2019-11-19"));
        assert_eq!(n("20191119").as_deref(), Some("2019-11-19"));
        assert_eq!(n("yesterday"), None);
        assert_eq!(n("2019-13-45"), None);
    }

    /// Multi-byte characters where the ISO parser expects digits once panicked ("end byte index
    /// 10 is not a char boundary"); each must give `None` or a date, never a panic.
    #[test]
    fn multibyte_input_never_panics() {
        let n = |s| normalize_date(s);
        assert_eq!(n("2019-11-€5"), None);
        assert_eq!(n("2019-€-19"), None);
        assert_eq!(n("20€9-11-19"), None);
        assert_eq!(n("2019-11-19T0€:22"), Some("2019-11-19".to_owned()));
        assert_eq!(n("2019-11-19T08:€2"), Some("2019-11-19".to_owned()));
        assert_eq!(n("2019-11-19T08:22:0€").as_deref(), Some("2019-11-19"));
        assert_eq!(n("2019-11-19T08:22+0€:00").as_deref(), Some("2019-11-19"));
        assert_eq!(n("2019-11-19T08:22+€").as_deref(), Some("2019-11-19T08:22:00"));
        assert_eq!(n("2019-11-19T08:22:01+05:30").as_deref(), Some("2019-11-19T08:22:01+05:30"));
        assert_eq!(n("2019110€"), None);
        assert_eq!(n("2019-11-19T€€€€€€€€€€"), Some("2019-11-19".to_owned()));
        for s in ["€", "€€€€€€€€€€", "2019-11-1€", "1€-11-2019", "2019-11-19 €", "Nov € 2019"]
        {
            let _ = n(s);
        }
    }
}

//! Normalising the many ways pages write dates into ISO 8601: `YYYY-MM-DD`, or
//! `YYYY-MM-DDThh:mm[:ss][Z|±hh:mm]` when a time is given. Understands ISO-like strings (with
//! `/` or `.` separators or a space before the time), `November 19, 2019`, `19 Nov 2019`,
//! `Tue, 19 Nov 2019 10:00:00 GMT` and compact `20191119`. Anything else is `None`: a wrong
//! date is worse than none.

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

/// Normalises `raw` to ISO 8601, or `None` when it is not recognisably a date.
pub(crate) fn normalize_date(raw: &str) -> Option<String> {
    let s = raw.trim();
    let b = s.as_bytes();
    // ISO-like: YYYY[-/.]MM[-/.]DD...
    if b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && matches!(b[4], b'-' | b'/' | b'.') && b[7] == b[4] {
        let y: u32 = s[..4].parse().ok()?;
        let m: u32 = s[5..7].parse().ok()?;
        let d: u32 = s[8..10].parse().ok()?;
        if !valid(y, m, d) {
            return None;
        }
        let date = format!("{y:04}-{m:02}-{d:02}");
        let rest = &s[10..];
        if let Some(time) = rest.strip_prefix(['T', ' ']).and_then(normalize_time) {
            return Some(format!("{date}T{time}"));
        }
        return Some(date);
    }
    if b.len() == 8 && b.iter().all(u8::is_ascii_digit) {
        let (y, m, d) = (s[..4].parse().ok()?, s[4..6].parse().ok()?, s[6..8].parse().ok()?);
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
    if b.len() < 5 || !b[..2].iter().all(u8::is_ascii_digit) || b[2] != b':' {
        return None;
    }
    let h: u32 = t[..2].parse().ok()?;
    let mi: u32 = t[3..5].parse().ok()?;
    let mut i = 5;
    let mut sec = 0;
    if b.get(5) == Some(&b':') && b.len() >= 8 {
        sec = t[6..8].parse().ok()?;
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
    let zone = t[i..].trim();
    let zone = match zone.as_bytes().first() {
        Some(b'Z' | b'z') => "Z".to_owned(),
        Some(b'+' | b'-') if zone.len() >= 5 => {
            let z = zone.replace(':', "");
            format!("{}:{}", &z[..3], z.get(3..5)?)
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
}

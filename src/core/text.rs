//! Text made safe to show: recorded strings are written by whoever could sign an event, so
//! before a person reads them (a terminal, an HTML report) anything that would act on the
//! display instead of being shown is written as a visible escape.

use std::borrow::Cow;

/// Characters a terminal would act on, or that would make text read differently from what
/// it is: controls, bidi embeddings/overrides/isolates and marks, zero-width characters,
/// line and paragraph separators, the BOM, interlinear annotations and tag characters.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}')
}

/// `s` with every unsafe character except those in `keep` written as `\u{hex}`.
pub fn escape<'a>(s: &'a str, keep: &[char]) -> Cow<'a, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep.contains(&c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) && !keep.contains(&c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A decimal number written the one way the formats allow: ASCII digits, no sign, no
/// leading zero (`0` alone is zero); `None` for anything else or past u64.
pub fn decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

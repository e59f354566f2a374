//! The only place that writes: human output (aligned tables), JSON, and messages on stderr.
//!
//! Human output never lets recorded text act on the terminal: control characters (C0, DEL,
//! C1) and invisible or direction-changing format characters are shown as `\u{…}` escapes,
//! and text that looks like a secret or token is redacted. JSON is written exactly.

use std::io::Write;

use serde::Serialize;

pub use keyledger::core::text::escape;

use super::error::CliError;

/// One recorded value for a human line: nothing in it can break the line or act on the
/// terminal, and nothing secret-like is repeated.
pub fn clean(s: &str) -> String {
    escape(&keyledger::core::credentials::redact(s), &[]).into_owned()
}

/// Human layout keeps newlines and tabs; everything else unsafe is escaped.
const LAYOUT: [char; 2] = ['\n', '\t'];

/// Renders rows as left-aligned columns under a header; every cell is `clean`ed.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            l.push_str(c);
            if i + 1 < widths.len() {
                // Padded by hand: `format!`'s width is limited to 65535.
                let pad = w.saturating_sub(c.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

/// Prints `v` as pretty JSON on stdout, exactly.
pub fn json<T: Serialize>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(CliError::io)?;
    print_raw(&format!("{s}\n"))
}

/// Prints human text on stdout: unsafe characters other than newline and tab escaped, and
/// anything secret-like redacted. Values quoted in it should be `clean`ed by the caller, so
/// that a newline inside one cannot start a line of its own.
pub fn print(s: &str) -> Result<(), CliError> {
    print_raw(&escape(&keyledger::core::credentials::redact(s), &LAYOUT))
}

/// Writes exactly `s` to stdout and flushes (JSON, CSV, a secret for its requester); a
/// closed stdout is an I/O error, not a panic.
pub fn print_raw(s: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::stdout_closed(),
            _ => CliError::io(format!("writing to stdout: {e}")),
        })
}

/// A message on stderr (`keyledger: …`): one line, made safe like a recorded value (a
/// newline in text it quotes cannot start a line of its own).
pub fn message(s: &str) {
    eprintln!("keyledger: {}", clean(s));
}

/// A warning on stderr.
pub fn warn(s: &str) {
    message(&format!("warning: {s}"));
}

/// `-` for absent values in tables.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_bidi_are_escaped_in_human_output() {
        let s = "a\u{1b}[2Jb\rc\u{7}d\u{202e}e\u{9b}f\u{200b}g";
        assert_eq!(
            clean(s),
            "a\\u{1b}[2Jb\\u{d}c\\u{7}d\\u{202e}e\\u{9b}f\\u{200b}g"
        );
        assert_eq!(clean("line\nforged"), "line\\u{a}forged");
        assert_eq!(escape("a\nb\tc", &LAYOUT), "a\nb\tc");
        assert_eq!(clean("plain é ü 日本"), "plain é ü 日本");
        let t = table(&["A", "B"], &[vec!["x\ny".into(), "\u{1b}z".into()]]);
        assert!(!t.contains('\u{1b}') && t.lines().count() == 2, "{t}");
        // Wider than `format!` can pad.
        let wide = "9,".repeat(40_000);
        let t = table(&["A", "B"], &[vec![wide.clone(), "x".into()]]);
        assert!(t.contains(&wide) && t.ends_with("x\n"));
    }
}

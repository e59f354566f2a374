//! Access key IDs, secrets and security tokens (R5, R6), and the fingerprints the ledger
//! stores instead of secrets. Every form carries a checksum so a scanner can recognise it
//! without false positives. Specified in `ledger-format.md` §11.
//!
//! ```text
//! permanent key ID   KLAK + 16 base32 random + 6 base32 checksum   (26 chars)
//! temporary key ID   KLST + 16 base32 random + 6 base32 checksum   (26 chars)
//! secret             klsk_ + 40 base62 random + 6 base62 checksum  (51 chars)
//! security token     kltk_ + 64 base62 random + 6 base62 checksum  (75 chars)
//! ```

use std::fmt;

use rand::RngCore;
use zeroize::Zeroizing;

use crate::core::types::{Bytes, Hash32};

pub const PERMANENT_PREFIX: &str = "KLAK";
pub const TEMPORARY_PREFIX: &str = "KLST";
pub const SECRET_PREFIX: &str = "klsk_";
pub const TOKEN_PREFIX: &str = "kltk_";
pub const CHECKSUM_CONTEXT: &str = "keyledger 2026-11-22 credential checksum v1";
pub const FINGERPRINT_CONTEXT: &str = "keyledger 2026-11-22 secret fingerprint v1";

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The shapes of credential text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    PermanentId,
    TemporaryId,
    Secret,
    Token,
}

impl Form {
    pub fn prefix(self) -> &'static str {
        match self {
            Form::PermanentId => PERMANENT_PREFIX,
            Form::TemporaryId => TEMPORARY_PREFIX,
            Form::Secret => SECRET_PREFIX,
            Form::Token => TOKEN_PREFIX,
        }
    }

    fn alphabet(self) -> &'static [u8] {
        match self {
            Form::PermanentId | Form::TemporaryId => BASE32,
            Form::Secret | Form::Token => BASE62,
        }
    }

    fn random_len(self) -> usize {
        match self {
            Form::PermanentId | Form::TemporaryId => 16,
            Form::Secret => 40,
            Form::Token => 64,
        }
    }

    /// Total length in characters.
    pub fn len(self) -> usize {
        self.prefix().len() + self.random_len() + 6
    }

    pub fn is_empty(self) -> bool {
        false
    }
}

/// The 6 checksum characters of `prefix + random`: the first 4 bytes of
/// blake3-derive-key(CHECKSUM_CONTEXT, text) as a big-endian u32, written as 6 digits of the
/// form's alphabet, most significant first (base32 keeps the top 30 bits; base62 all 32).
pub fn checksum(form: Form, text: &str) -> String {
    let mut h = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT);
    h.update(text.as_bytes());
    let v = u32::from_be_bytes(h.finalize().as_bytes()[..4].try_into().expect("4 bytes"));
    let alphabet = form.alphabet();
    let mut n = match form {
        Form::PermanentId | Form::TemporaryId => (v >> 2) as u64,
        Form::Secret | Form::Token => v as u64,
    };
    let base = alphabet.len() as u64;
    let mut out = [0u8; 6];
    for slot in out.iter_mut().rev() {
        *slot = alphabet[(n % base) as usize];
        n /= base;
    }
    String::from_utf8(out.to_vec()).expect("ASCII")
}

/// True if `s` has exactly the shape of `form` and its checksum matches.
pub fn is_valid(form: Form, s: &str) -> bool {
    let Some(rest) = s.strip_prefix(form.prefix()) else {
        return false;
    };
    if rest.len() != form.random_len() + 6 || !rest.bytes().all(|c| form.alphabet().contains(&c)) {
        return false;
    }
    let (body, sum) = s.split_at(s.len() - 6);
    checksum(form, body) == sum
}

/// Which ID form `s` is, if it is a well-formed key ID.
pub fn id_form(s: &str) -> Option<Form> {
    [Form::PermanentId, Form::TemporaryId]
        .into_iter()
        .find(|&f| is_valid(f, s))
}

fn generate(form: Form) -> Zeroizing<String> {
    let alphabet = form.alphabet();
    let mut s = Zeroizing::new(String::with_capacity(form.len()));
    s.push_str(form.prefix());
    let mut buf = Zeroizing::new([0u8; 64]);
    while s.len() < form.prefix().len() + form.random_len() {
        rand::rngs::OsRng.fill_bytes(&mut *buf);
        // Rejection sampling keeps every character uniform.
        let limit = 256 - 256 % alphabet.len();
        for &b in buf.iter().filter(|&&b| (b as usize) < limit) {
            if s.len() == form.prefix().len() + form.random_len() {
                break;
            }
            s.push(alphabet[b as usize % alphabet.len()] as char);
        }
    }
    let sum = checksum(form, &s);
    s.push_str(&sum);
    s
}

/// Does `text` hold a well-formed secret or security token (prefix, length and checksum
/// all right) anywhere in it? What §7 forbids in every text field of an event.
pub fn contains_credential(text: &str) -> bool {
    // Both prefixes end in '_': most text has none, and is done with one scan.
    if !text.as_bytes().contains(&b'_') {
        return false;
    }
    [Form::Secret, Form::Token].into_iter().any(|form| {
        text.match_indices(form.prefix()).any(|(i, _)| {
            text.get(i..i + form.len())
                .is_some_and(|candidate| is_valid(form, candidate))
        })
    })
}

/// Does `text` look like it holds a secret or token, even a mistyped or cut one (the prefix
/// and at least 16 base62 characters)? Input that does is refused before anything is
/// recorded.
pub fn looks_like_credential(text: &str) -> bool {
    credential_runs(text).any(|(_, run)| run >= 16)
}

/// Each `klsk_` or `kltk_` in `text`: its byte offset, and how many ASCII letters and digits
/// follow it. One pass, whatever the text holds.
fn credential_runs(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 5 <= b.len() {
            let at = i;
            i += 1;
            if b[at] == b'k' && (&b[at..at + 5] == b"klsk_" || &b[at..at + 5] == b"kltk_") {
                let run = b[at + 5..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .count();
                i = at + 5 + run;
                return Some((at, run));
            }
        }
        None
    })
}

/// `text` with every secret- or token-like run (`klsk_` or `kltk_` and the letters and
/// digits after it, whatever its checksum) replaced by its prefix and `<redacted>`, so that
/// no message ever repeats a secret a user pasted in the wrong place. Linear in `text`.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let mut runs = credential_runs(text).filter(|(_, run)| *run > 0).peekable();
    if runs.peek().is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (at, run) in runs {
        out.push_str(&text[from..at + 5]);
        out.push_str("<redacted>");
        from = at + 5 + run;
    }
    out.push_str(&text[from..]);
    std::borrow::Cow::Owned(out)
}

/// A new key ID of the given form (PermanentId or TemporaryId).
pub fn new_key_id(temporary: bool) -> String {
    let form = if temporary {
        Form::TemporaryId
    } else {
        Form::PermanentId
    };
    generate(form).to_string()
}

/// A secret or security token. Never printed by `Debug`; zeroized on drop.
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    pub fn new_secret() -> Self {
        SecretText(generate(Form::Secret))
    }

    pub fn new_token() -> Self {
        SecretText(generate(Form::Token))
    }

    /// Wraps text read from a user (e.g. `auth` on stdin).
    pub fn from_input(s: &str) -> Self {
        SecretText(Zeroizing::new(s.to_owned()))
    }

    /// The secret itself: only for handing it to the requester.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// The stored fingerprint: blake3-derive-key(FINGERPRINT_CONTEXT, key_id || 0x00 || secret).
/// Binding the key ID means one secret can never match another key's fingerprint.
pub fn fingerprint(key_id: &str, secret: &SecretText) -> Hash32 {
    let mut h = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
    h.update(key_id.as_bytes());
    h.update(&[0]);
    h.update(secret.expose().as_bytes());
    Bytes(*h.finalize().as_bytes())
}

/// Constant-time comparison of a presented secret against a stored fingerprint.
pub fn matches(key_id: &str, presented: &SecretText, stored: &Hash32) -> bool {
    blake3::Hash::from(fingerprint(key_id, presented).0) == blake3::Hash::from(stored.0)
}

/// Every keyledger credential in `text`: (byte offset, form, the text), in order. A
/// candidate counts only with its exact shape and a matching checksum, standing alone (no
/// letter or digit right before or after it), so a scanner finds our IDs, secrets and tokens
/// and nothing else (§11).
pub fn scan(text: &str) -> Vec<(usize, Form, &str)> {
    const FORMS: [Form; 4] = [
        Form::PermanentId,
        Form::TemporaryId,
        Form::Secret,
        Form::Token,
    ];
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let alone_before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let found = FORMS.into_iter().find(|&f| {
            let end = i + f.len();
            alone_before
                && end <= b.len()
                && (end == b.len() || !b[end].is_ascii_alphanumeric())
                && text.is_char_boundary(end)
                && is_valid(f, &text[i..end])
        });
        match found {
            Some(f) => {
                out.push((i, f, &text[i..i + f.len()]));
                i += f.len();
            }
            None => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated credentials are all found; near-misses (a changed checksum character,
    /// one character more or less, glued to a word, other case) are not.
    #[test]
    fn scan_finds_exactly_the_well_formed_credentials() {
        let id = new_key_id(false);
        let sts = new_key_id(true);
        let secret = SecretText::new_secret();
        let token = SecretText::new_token();
        let text = format!(
            "id={id}\n{} and \"{}\"; temp {sts}.",
            secret.expose(),
            token.expose()
        );
        let found: Vec<(Form, &str)> = scan(&text).into_iter().map(|(_, f, t)| (f, t)).collect();
        assert_eq!(
            found,
            [
                (Form::PermanentId, id.as_str()),
                (Form::Secret, secret.expose()),
                (Form::Token, token.expose()),
                (Form::TemporaryId, sts.as_str()),
            ]
        );
        let s = secret.expose();
        let flip = |t: &str, at: usize| {
            let mut v: Vec<char> = t.chars().collect();
            v[at] = if v[at] == 'A' { 'B' } else { 'A' };
            v.into_iter().collect::<String>()
        };
        for miss in [
            flip(s, s.len() - 1),
            flip(s, 10),
            s[..s.len() - 1].to_owned(),
            format!("{s}x"),
            format!("x{s}"),
            s.to_uppercase(),
            flip(&id, id.len() - 2),
            format!("{id}7"),
            id.to_lowercase(),
            "klsk_".to_owned(),
        ] {
            assert!(scan(&miss).is_empty(), "{miss}");
        }
    }

    #[test]
    fn generated_forms_are_valid_and_distinct() {
        for temp in [false, true] {
            let id = new_key_id(temp);
            assert_eq!(id.len(), 26);
            assert_eq!(
                id_form(&id),
                Some(if temp {
                    Form::TemporaryId
                } else {
                    Form::PermanentId
                })
            );
        }
        let s = SecretText::new_secret();
        assert_eq!(s.expose().len(), 51);
        assert!(is_valid(Form::Secret, s.expose()));
        assert!(is_valid(Form::Token, SecretText::new_token().expose()));
        assert_ne!(s.expose(), SecretText::new_secret().expose());
        assert_eq!(format!("{s:?}"), "SecretText(<redacted>)");
    }

    #[test]
    fn any_single_character_change_breaks_the_checksum() {
        let id = new_key_id(false);
        for i in 4..id.len() {
            for c in BASE32 {
                let mut b = id.clone().into_bytes();
                if b[i] == *c {
                    continue;
                }
                b[i] = *c;
                let s = String::from_utf8(b).unwrap();
                assert!(!is_valid(Form::PermanentId, &s), "{s}");
            }
        }
    }

    #[test]
    fn credentials_are_recognised_and_redacted() {
        let s = SecretText::new_secret();
        let t = SecretText::new_token();
        for text in [
            s.expose().to_owned(),
            format!("scenario: {} (oops)", s.expose()),
            format!("x{}y", t.expose()),
        ] {
            assert!(contains_credential(&text), "{text}");
            let r = redact(&text);
            assert!(!r.contains(&s.expose()[5..]) && !r.contains(&t.expose()[5..]));
            assert!(r.contains("<redacted>"));
        }
        // A mistyped secret is not well-formed, but still never echoed.
        let typo = format!("{}X", &s.expose()[..30]);
        assert!(!contains_credential(&typo));
        assert!(looks_like_credential(&typo));
        assert_eq!(redact(&typo), "klsk_<redacted>");
        // Linear, however many prefixes the text holds.
        let many = "klsk_-".repeat(200_000);
        assert_eq!(redact(&many), many);
        let packed = "klsk_".repeat(200_000);
        assert_eq!(redact(&packed), "klsk_<redacted>_".repeat(100_000));
        assert!(!looks_like_credential("--out kltk_exports2026/e.jsonl"));
        assert_eq!(redact("(klsk_… or kltk_…)"), "(klsk_… or kltk_…)");
        assert_eq!(redact("plain text"), "plain text");
        assert!(!looks_like_credential("KLAKAAAAAAAAAAAAAAAALP5KS6"));
        assert!(!looks_like_credential("rotate the leaked klsk_ secret"));
    }

    #[test]
    fn fingerprint_matches_only_the_right_secret_and_key() {
        let s = SecretText::new_secret();
        let fp = fingerprint("KLAKA", &s);
        assert!(matches("KLAKA", &s, &fp));
        assert!(!matches("KLAKB", &s, &fp));
        assert!(!matches("KLAKA", &SecretText::new_secret(), &fp));
    }
}

//! Maskings of sensitive columns: `hash` (keyed HMAC-SHA-256, hex), `mask` (keep the first and
//! last characters) and `null`. Same input and key, same output, so hashed columns still join.
//! The sink's rules apply them as conversions; the capture applies them before events leave it.

use crate::config::ConvertConfig;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use sluice_config::Problems;
use std::fmt::Write as _;

/// One masking, compiled.
#[derive(Clone, PartialEq, Eq)]
pub enum Masking {
    /// Keyed HMAC-SHA-256, hex.
    Hash(Vec<u8>),
    /// Keep `first` and `last` characters, `with` in place of the others.
    Mask {
        first: usize,
        last: usize,
        with: char,
    },
    /// `null`.
    Null,
}

// The key never prints.
impl std::fmt::Debug for Masking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Masking::Hash(_) => f.write_str("Hash(***)"),
            Masking::Mask { first, last, with } => write!(f, "Mask({first}, {last}, {with:?})"),
            Masking::Null => f.write_str("Null"),
        }
    }
}

/// The masking names.
pub const MASKINGS: &str = "hash, mask, null";

impl Masking {
    /// Compiles `spec` (a `hash`, `mask` or `null` conversion) configured at `key`; `None`
    /// (with the problem recorded) when it is another kind or lacks its key.
    pub fn compile(spec: &ConvertConfig, key: &str, problems: &mut Problems) -> Option<Masking> {
        match spec.kind.as_str() {
            "hash" => match spec.key.as_ref().map(|k| k.expose()) {
                Some(k) if !k.is_empty() => Some(Masking::Hash(k.as_bytes().to_vec())),
                Some(_) => {
                    problems.add(format!("{key}.key"), "the hash key is empty; set the environment variable it names to a long random secret");
                    None
                }
                None => {
                    problems.add(key, "conversion `hash` needs a key from the environment, e.g. { type = \"hash\", key = \"${SLUICE_HASH_KEY}\" }");
                    None
                }
            },
            "mask" => Some(Masking::Mask {
                first: spec.keep_first.unwrap_or(0),
                last: spec.keep_last.unwrap_or(0),
                with: spec.mask_with.unwrap_or('*'),
            }),
            "null" => Some(Masking::Null),
            other => {
                problems.add(
                    key,
                    format!("unknown masking `{other}`; use one of: {MASKINGS}"),
                );
                None
            }
        }
    }

    /// The masked value; null stays null.
    pub fn apply(&self, value: &Value) -> Value {
        match (self, value) {
            (_, Value::Null) | (Masking::Null, _) => Value::Null,
            (Masking::Hash(key), v) => hash(key, v),
            (Masking::Mask { first, last, with }, v) => mask(v, *first, *last, *with),
        }
    }
}

/// HMAC-SHA-256 of the value's text under `key`, as 64 lowercase hex digits. Text is hashed as
/// it is; other values as their compact JSON (`42`, `true`, `["a"]`).
pub fn hash(key: &[u8], value: &Value) -> Value {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC takes keys of any length; this cannot happen.
        return Value::Null;
    };
    match value {
        Value::String(s) => mac.update(s.as_bytes()),
        other => mac.update(other.to_string().as_bytes()),
    }
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    Value::String(hex)
}

/// The value's text with every character but the first `first` and the last `last` replaced
/// by `with`; a text no longer than `first + last` is replaced whole, so a short value is not
/// shown in full.
pub fn mask(value: &Value, first: usize, last: usize, with: char) -> Value {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let n = text.chars().count();
    if n <= first + last {
        return Value::String(std::iter::repeat_n(with, n).collect());
    }
    let out: String = text
        .chars()
        .enumerate()
        .map(|(i, c)| if i < first || i >= n - last { c } else { with })
        .collect();
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashing_is_keyed_stable_and_hex() {
        // RFC 4231 test case 2.
        let h = hash(b"Jefe", &json!("what do ya want for nothing?"));
        assert_eq!(
            h,
            json!("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(hash(b"k", &json!(42)), hash(b"k", &json!(42)));
        assert_ne!(hash(b"k", &json!("a")), hash(b"other key", &json!("a")));
        assert_eq!(
            hash(b"k", &json!(42)),
            hash(b"k", &json!("42")),
            "numbers hash as their text"
        );
    }

    #[test]
    fn masking_keeps_the_ends_and_hides_short_values_whole() {
        assert_eq!(mask(&json!("13812345678"), 3, 4, '*'), json!("138****5678"));
        assert_eq!(mask(&json!("naïve@e.io"), 1, 0, '#'), json!("n#########"));
        assert_eq!(mask(&json!("abc"), 2, 2, '*'), json!("***"));
        assert_eq!(mask(&json!(123456), 0, 2, '*'), json!("****56"));
    }
}

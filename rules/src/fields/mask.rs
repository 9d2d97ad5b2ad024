//! Maskings of sensitive columns: `hash` (keyed HMAC-SHA-256, hex), `mask` (keep the first and
//! last characters) and `null`. Same input and key, same output, so hashed columns still join.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::fmt::Write as _;

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

//! DECIMAL(precision, scale) in its binlog form: the first two bytes choose precision and scale,
//! the rest is the value. An error or a number that parses as one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_capture::binlog::cursor::Cursor;
use sluice_capture::binlog::decimal::read_decimal;

fuzz_target!(|data: &[u8]| {
    let [p, s, rest @ ..] = data else {
        return;
    };
    let precision = 1 + p % 65;
    let scale = s % (precision.min(30) + 1);
    let mut c = Cursor::new(rest);
    if let Ok(text) = read_decimal(&mut c, precision, scale) {
        assert!(
            text.parse::<f64>().is_ok(),
            "DECIMAL({precision},{scale}) gave {text:?}"
        );
    }
});

//! Fuzz target: the mapping expression parser (and, for what parses, the evaluator) must never panic.
//! Run: `cargo fuzz run -s none expr_parse` (stable) — see docs/projection.md.
#![no_main]

use cloudsync_agent::projection::expr::{EvalContext, Value, eval, parse};
use libfuzzer_sys::fuzz_target;

struct Fixed;

impl EvalContext for Fixed {
    fn attribute(&self, name: &str) -> Value {
        match name.len() % 4 {
            0 => Value::Null,
            1 => Value::Str(name.to_string()),
            2 => Value::Multi(vec![name.to_string(), String::new()]),
            _ => Value::Bin(name.as_bytes().to_vec()),
        }
    }
    fn guid_bytes(&self) -> [u8; 16] {
        [7; 16]
    }
    fn is_unique(&self, value: &str) -> bool {
        value.len() % 2 == 0
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(expr) = parse(text) {
            let _ = eval(&expr, &Fixed);
        }
    }
});

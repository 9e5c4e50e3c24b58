//! Test helper: does a JSON value have a documented payload's shape (same keys, same JSON
//! types, recursively; array elements compared with the fixture's element at the same
//! index, or its first)?

use serde_json::Value;

/// Loads a fixture from `bench/fixtures/providers/`.
pub fn fixture(path: &str) -> Value {
    let full = format!("{}/fixtures/providers/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Panics with every difference unless `actual` has the shape of `documented`. Keys of the
/// fixture named in `optional` may be absent from `actual`; no key may be added.
pub fn assert_conforms(actual: &Value, documented: &Value, optional: &[&str]) {
    let mut errors = Vec::new();
    walk(actual, documented, "$", optional, &mut errors);
    assert!(
        errors.is_empty(),
        "shape differs from the documented payload:\n  {}\nactual: {actual:#}",
        errors.join("\n  ")
    );
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(a: &Value, d: &Value, path: &str, optional: &[&str], errors: &mut Vec<String>) {
    match (a, d) {
        (Value::Object(a), Value::Object(d)) => {
            for (k, av) in a {
                match d.get(k) {
                    Some(dv) => walk(av, dv, &format!("{path}.{k}"), optional, errors),
                    None => errors.push(format!("{path}.{k} is not in the documented payload")),
                }
            }
            for k in d.keys() {
                if !a.contains_key(k) && !optional.contains(&k.as_str()) {
                    errors.push(format!("{path}.{k} is missing"));
                }
            }
        }
        (Value::Array(a), Value::Array(d)) => {
            // Element i against the fixture's element i (arrays of unions, e.g. RBM
            // suggestions, list one of each kind), past its end against its first.
            if let Some(first) = d.first() {
                for (i, av) in a.iter().enumerate() {
                    let dv = d.get(i).unwrap_or(first);
                    walk(av, dv, &format!("{path}[{i}]"), optional, errors);
                }
            }
        }
        _ if kind(a) == kind(d) => {}
        _ => errors.push(format!(
            "{path} is {} where the documentation has {}",
            kind(a),
            kind(d)
        )),
    }
}

#[test]
fn detects_differences() {
    let d = serde_json::json!({"a": 1, "b": [{"c": "x"}], "o": true});
    assert_conforms(
        &serde_json::json!({"a": 2, "b": [{"c": "y"}, {"c": "z"}]}),
        &d,
        &["o"],
    );
    let mut errors = Vec::new();
    walk(
        &serde_json::json!({"a": "1", "b": [{"c": "x", "d": 1}]}),
        &d,
        "$",
        &[],
        &mut errors,
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
}

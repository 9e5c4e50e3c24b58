//! Batch body templates: `Hello {{first_name}}, your code is {{ code }}.`
//!
//! Rules (also in the API docs):
//! - A placeholder is `{{`, optional spaces, a name (`[A-Za-z_][A-Za-z0-9_]*`), optional
//!   spaces, `}}`. Anything else after `{{` (an unterminated placeholder, a bad name) makes the
//!   template invalid: the whole batch is refused with 422.
//! - `\{{` writes a literal `{{`; no other escapes (an even run of backslashes before `{{` is
//!   kept as text and the placeholder expands).
//! - Values are inserted verbatim and never expanded again (a value containing `{{x}}` stays as
//!   it is). Strings, numbers and booleans are accepted; `null`, arrays and objects are not.
//! - A placeholder whose variable the recipient does not give rejects that recipient (reason
//!   `missing_variable`); the rest of the batch goes on. Extra variables are ignored.

use serde_json::{Map, Value};

/// One piece of a compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Text copied as is.
    Literal(String),
    /// A variable's value.
    Var(String),
}

/// A template compiled once per batch and rendered per recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    /// Literal text and placeholders, in order.
    parts: Vec<Part>,
    /// Bytes of literal text (to size the output).
    literal_len: usize,
}

/// Why a recipient's body could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RenderError {
    /// The template uses a variable this recipient does not give.
    #[error("variable {0:?} is missing")]
    Missing(String),
    /// The variable's value is not a string, number or boolean.
    #[error("variable {0:?} must be a string, number or boolean")]
    BadValue(String),
}

impl Template {
    /// Compiles `text`, or says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find("{{") {
            let (before, after) = rest.split_at(pos);
            // `\{{` is a literal `{{` (an even number of backslashes before it is not an escape).
            let backslashes = before.bytes().rev().take_while(|b| *b == b'\\').count();
            if backslashes % 2 == 1 {
                literal.push_str(&before[..before.len() - 1]);
                literal.push_str("{{");
                rest = &after[2..];
                continue;
            }
            literal.push_str(before);
            let inner_start = &after[2..];
            let end = inner_start.find("}}").ok_or_else(|| {
                format!(
                    "unterminated placeholder at byte {}",
                    text.len() - rest.len() + pos
                )
            })?;
            let name = inner_start[..end].trim();
            let valid = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "{{{{{}}}}} is not a placeholder: names are letters, digits and _",
                    &inner_start[..end]
                ));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &inner_start[end + 2..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let literal_len = parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.len(),
                Part::Var(_) => 0,
            })
            .sum();
        Ok(Template { parts, literal_len })
    }

    /// True when the template has no placeholder (every recipient gets the same body).
    pub(crate) fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The literal text alone, placeholders left out. Every rendering contains it, so a
    /// literal text that is already too long (or unencodable) makes every recipient's body so.
    pub(crate) fn literal_text(&self) -> String {
        let mut out = String::with_capacity(self.literal_len);
        for part in &self.parts {
            if let Part::Literal(s) = part {
                out.push_str(s);
            }
        }
        out
    }

    /// The body for one recipient's variables (a map, or the request's [`Variables`]).
    pub(crate) fn render<V: Lookup + ?Sized>(
        &self,
        vars: Option<&V>,
    ) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.literal_len + 16);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(name) => match vars.and_then(|v| v.lookup(name)) {
                    None => return Err(RenderError::Missing(name.clone())),
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
                    Some(_) => return Err(RenderError::BadValue(name.clone())),
                },
            }
        }
        Ok(out)
    }
}

/// Where [`Template::render`] finds a variable's value by name.
pub(crate) trait Lookup {
    /// The value of the variable `name`, if given.
    fn lookup(&self, name: &str) -> Option<&Value>;
}

impl Lookup for Map<String, Value> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A recipient's variables as the request gives them (a JSON object), kept as a list of
/// names and values: one allocation for the list where a map takes a tree node of about
/// 600 bytes. A name given twice counts with its last value, as when the object is read into
/// a map.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Variables(Vec<(String, Value)>);

impl Lookup for Variables {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl<'de> serde::Deserialize<'de> for Variables {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Variables;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Variables, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(Variables(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn renders_variables() {
        let t = Template::parse("Hi {{first_name}}, code {{ code }}!").unwrap();
        let v = vars(json!({"first_name": "Ada", "code": 1234, "extra": true}));
        assert_eq!(t.render(Some(&v)).unwrap(), "Hi Ada, code 1234!");
        assert!(!t.is_constant());
        assert!(Template::parse("no variables").unwrap().is_constant());
    }

    #[test]
    fn a_list_of_variables_renders_as_the_map_of_the_same_object() {
        let t = Template::parse("Hi {{first_name}}, code {{ code }}, {{flag}}").unwrap();
        let text = r#"{"first_name": "Bob", "code": 7, "first_name": "Ada", "flag": false}"#;
        let list: Variables = serde_json::from_str(text).unwrap();
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(
            t.render(Some(&list)).unwrap(),
            t.render(Some(&map)).unwrap()
        );
        assert_eq!(t.render(Some(&list)).unwrap(), "Hi Ada, code 7, false");
        let missing: Variables = serde_json::from_str(r#"{"code": 1}"#).unwrap();
        assert_eq!(
            t.render(Some(&missing)),
            Err(RenderError::Missing("first_name".into()))
        );
        let not_an_object = serde_json::from_str::<Variables>("[1]").unwrap_err();
        let map_error = serde_json::from_str::<Map<String, Value>>("[1]").unwrap_err();
        assert_eq!(not_an_object.to_string(), map_error.to_string());
    }

    #[test]
    fn missing_and_bad_values_reject_the_recipient() {
        let t = Template::parse("Hi {{first_name}}").unwrap();
        assert_eq!(
            t.render(Some(&vars(json!({"last_name": "L"})))),
            Err(RenderError::Missing("first_name".into()))
        );
        assert_eq!(
            t.render(None::<&Variables>),
            Err(RenderError::Missing("first_name".into()))
        );
        assert_eq!(
            t.render(Some(&vars(json!({"first_name": null})))),
            Err(RenderError::BadValue("first_name".into()))
        );
    }

    #[test]
    fn values_are_not_expanded_again_and_escapes_work() {
        let t = Template::parse(r"\{{literal}} {{a}} \\{{b}}").unwrap();
        let v = vars(json!({"a": "{{b}}", "b": "B"}));
        assert_eq!(t.render(Some(&v)).unwrap(), r"{{literal}} {{b}} \\B");
    }

    #[test]
    fn invalid_templates_are_refused() {
        assert!(Template::parse("Hi {{first_name").is_err());
        assert!(Template::parse("Hi {{first name}}").is_err());
        assert!(Template::parse("Hi {{}}").is_err());
        assert!(Template::parse("Hi {{1x}}").is_err());
        // A lone brace is text.
        assert_eq!(
            Template::parse("a { b } c")
                .unwrap()
                .render(None::<&Variables>)
                .unwrap(),
            "a { b } c"
        );
    }
}

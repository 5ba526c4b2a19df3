//! Editing a JSON body with dotted paths (`a.b.c`, `items.0.name`, `\.` for a literal dot).

use serde_json::{Map, Value};

use crate::config::ValueType;

/// A parsed body path: one segment per object key or array index.
pub type Path = Vec<String>;

/// One edit of a JSON body, in rule order.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyOp {
    /// Delete the value at the path.
    Remove(Path),
    /// Move the value at the first path to the second one.
    Rename(Path, Path),
    /// Set the value, only if the path exists.
    Replace(Path, Value),
    /// Set the value, only if the path is absent.
    Add(Path, Value),
    /// Push onto an array, turn a scalar into an array, or add when absent.
    Append(Path, Value),
    /// Copy the value at the first path to the second one (overwriting), if it exists.
    Copy(Path, Path),
    /// Set the value, overwriting (a `map` from headers or query parameters).
    Set(Path, Value),
}

/// What [`apply`] did with a body.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The body is not JSON: leave it as it is.
    NotJson,
    /// No edit changed anything: leave the original bytes.
    Unchanged,
    /// The new body.
    Changed(Vec<u8>),
}

/// Splits a key on unescaped dots; `\.` is a literal dot and `\\` a literal backslash.
pub fn parse_path(key: &str) -> Path {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ ('.' | '\\')) => current.push(next),
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            },
            '.' => segments.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    segments.push(current);
    segments
}

/// Converts a configured value to JSON of the requested type.
pub fn typed_value(text: &str, value_type: ValueType) -> Result<Value, String> {
    let parsed = || serde_json::from_str::<Value>(text.trim());
    match value_type {
        ValueType::String => Ok(Value::String(text.to_owned())),
        ValueType::Number => match parsed() {
            Ok(v @ Value::Number(_)) => Ok(v),
            _ => Err(format!("`{text}` is not a number (value_type number)")),
        },
        ValueType::Boolean => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not true or false (value_type boolean)")),
        },
        ValueType::Object => match parsed() {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(format!("`{text}` is not a JSON object (value_type object)")),
        },
        ValueType::Array => match parsed() {
            Ok(v @ Value::Array(_)) => Ok(v),
            _ => Err(format!("`{text}` is not a JSON array (value_type array)")),
        },
    }
}

/// Applies `ops` in order to `body`. Returns [`Outcome::Unchanged`] when nothing changed, so
/// the original bytes (and formatting) are kept.
pub fn apply(body: &[u8], ops: &[BodyOp]) -> Outcome {
    let Ok(mut doc) = serde_json::from_slice::<Value>(body) else {
        return Outcome::NotJson;
    };
    let mut changed = false;
    for op in ops {
        changed |= apply_one(&mut doc, op);
    }
    if !changed {
        return Outcome::Unchanged;
    }
    match serde_json::to_vec(&doc) {
        Ok(bytes) => Outcome::Changed(bytes),
        Err(_) => Outcome::Unchanged,
    }
}

/// Applies one edit; whether the document changed.
pub fn apply_one(doc: &mut Value, op: &BodyOp) -> bool {
    match op {
        BodyOp::Remove(path) => remove(doc, path).is_some(),
        BodyOp::Rename(from, to) => {
            if from == to || get(doc, from).is_none() || !settable(doc, to) {
                return false;
            }
            match remove(doc, from) {
                Some(value) => set(doc, to, value),
                None => false,
            }
        }
        BodyOp::Replace(path, value) => get(doc, path).is_some() && set(doc, path, value.clone()),
        BodyOp::Add(path, value) => get(doc, path).is_none() && set(doc, path, value.clone()),
        BodyOp::Append(path, value) => match get_mut(doc, path) {
            Some(Value::Array(items)) => {
                items.push(value.clone());
                true
            }
            Some(existing) => {
                let old = existing.take();
                *existing = Value::Array(vec![old, value.clone()]);
                true
            }
            None => set(doc, path, value.clone()),
        },
        BodyOp::Copy(from, to) => match get(doc, from).cloned() {
            Some(value) if from != to => set(doc, to, value),
            _ => false,
        },
        BodyOp::Set(path, value) => set(doc, path, value.clone()),
    }
}

fn index(segment: &str) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

fn child<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(index(segment)?),
        _ => None,
    }
}

fn child_mut<'a>(value: &'a mut Value, segment: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(map) => map.get_mut(segment),
        Value::Array(items) => items.get_mut(index(segment)?),
        _ => None,
    }
}

/// The value at `path`.
pub fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |value, segment| child(value, segment))
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |value, segment| child_mut(value, segment))
}

/// Removes and returns the value at `path`.
fn remove(doc: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parent) = path.split_last()?;
    match get_mut(doc, parent)? {
        Value::Object(map) => map.remove(last),
        Value::Array(items) => {
            let at = index(last).filter(|i| *i < items.len())?;
            Some(items.remove(at))
        }
        _ => None,
    }
}

/// Whether [`set`] at `path` would succeed (without changing anything).
fn settable(doc: &Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut value = doc;
    for segment in parents {
        match child(value, segment) {
            Some(next) => value = next,
            // Missing keys of an object are created as objects, and so are their children.
            None => return matches!(value, Value::Object(_)),
        }
    }
    match value {
        Value::Object(_) => true,
        Value::Array(items) => index(last).is_some_and(|i| i <= items.len()),
        _ => false,
    }
}

/// Sets the value at `path`, creating missing objects on the way. An array element can be
/// replaced, or added at the index one past the end. Fails (false) when the path runs into a
/// scalar or a missing array element.
fn set(doc: &mut Value, path: &[String], new: Value) -> bool {
    if !settable(doc, path) {
        return false;
    }
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut value = doc;
    for segment in parents {
        value = match value {
            Value::Object(map) => map.entry(segment.clone()).or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => match index(segment).and_then(|i| items.get_mut(i)) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match value {
        Value::Object(map) => {
            map.insert(last.clone(), new);
            true
        }
        Value::Array(items) => match index(last) {
            Some(i) if i < items.len() => match items.get_mut(i) {
                Some(slot) => {
                    *slot = new;
                    true
                }
                None => false,
            },
            Some(i) if i == items.len() => {
                items.push(new);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(key: &str) -> Path {
        parse_path(key)
    }

    fn run(body: Value, ops: &[BodyOp]) -> Value {
        match apply(body.to_string().as_bytes(), ops) {
            Outcome::Changed(bytes) => serde_json::from_slice(&bytes).unwrap(),
            Outcome::Unchanged => body,
            Outcome::NotJson => panic!("not json"),
        }
    }

    #[test]
    fn paths_split_on_unescaped_dots() {
        assert_eq!(p("a"), vec!["a"]);
        assert_eq!(p("a.b.c"), vec!["a", "b", "c"]);
        assert_eq!(p(r"foo\.bar.x"), vec!["foo.bar", "x"]);
        assert_eq!(p(r"a\\.b"), vec![r"a\", "b"]);
        assert_eq!(p(r"a\b"), vec![r"a\b"]);
        assert_eq!(p("a..b"), vec!["a", "", "b"]);
    }

    #[test]
    fn typed_values() {
        assert_eq!(typed_value("x", ValueType::String).unwrap(), json!("x"));
        assert_eq!(typed_value("42", ValueType::Number).unwrap(), json!(42));
        assert_eq!(typed_value("1.5", ValueType::Number).unwrap(), json!(1.5));
        assert!(typed_value("4x", ValueType::Number).is_err());
        assert!(typed_value("\"4\"", ValueType::Number).is_err());
        assert_eq!(typed_value("true", ValueType::Boolean).unwrap(), json!(true));
        assert!(typed_value("yes", ValueType::Boolean).is_err());
        assert_eq!(typed_value(r#"{"a":1}"#, ValueType::Object).unwrap(), json!({"a": 1}));
        assert!(typed_value("[1]", ValueType::Object).is_err());
        assert_eq!(typed_value("[1,2]", ValueType::Array).unwrap(), json!([1, 2]));
        assert!(typed_value("{}", ValueType::Array).is_err());
    }

    #[test]
    fn remove_fields_and_array_elements() {
        let body = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2, 3]});
        let out = run(body, &[BodyOp::Remove(p("a")), BodyOp::Remove(p("b.c")), BodyOp::Remove(p("l.1"))]);
        assert_eq!(out, json!({"b": {"d": 3}, "l": [1, 3]}));
    }

    #[test]
    fn nothing_to_do_is_unchanged() {
        let body = br#"{ "a" : 1 }"#;
        assert_eq!(apply(body, &[BodyOp::Remove(p("zz")), BodyOp::Remove(p("a.b"))]), Outcome::Unchanged);
        assert_eq!(apply(body, &[BodyOp::Replace(p("x"), json!(1))]), Outcome::Unchanged);
        assert_eq!(apply(body, &[BodyOp::Add(p("a"), json!(2))]), Outcome::Unchanged);
        assert_eq!(apply(body, &[BodyOp::Rename(p("x"), p("y"))]), Outcome::Unchanged);
        assert_eq!(apply(body, &[BodyOp::Copy(p("x"), p("y"))]), Outcome::Unchanged);
        assert_eq!(apply(b"not json", &[BodyOp::Remove(p("a"))]), Outcome::NotJson);
        assert_eq!(apply(b"", &[BodyOp::Remove(p("a"))]), Outcome::NotJson);
    }

    #[test]
    fn rename_moves_nested_values() {
        let body = json!({"user": {"pw": "x", "name": "n"}, "users": [{"123": {"n": 1}}]});
        let out = run(
            body,
            &[
                BodyOp::Rename(p("user.pw"), p("secret.password")),
                BodyOp::Rename(p("users.0.123"), p("users.0.first")),
                BodyOp::Rename(p("user.name"), p("user.name")),
            ],
        );
        assert_eq!(out, json!({"user": {"name": "n"}, "secret": {"password": "x"}, "users": [{"first": {"n": 1}}]}));
    }

    #[test]
    fn rename_into_a_scalar_keeps_the_original() {
        let body = json!({"a": 1, "s": "str"});
        assert_eq!(run(body.clone(), &[BodyOp::Rename(p("a"), p("s.x"))]), body);
    }

    #[test]
    fn replace_only_existing_add_only_absent() {
        let body = json!({"a": 1, "n": {"x": 1}});
        let out = run(
            body,
            &[
                BodyOp::Replace(p("a"), json!("r")),
                BodyOp::Replace(p("missing"), json!("r")),
                BodyOp::Add(p("a"), json!("no")),
                BodyOp::Add(p("n.y"), json!(2)),
                BodyOp::Add(p("meta.source"), json!("gateway")),
            ],
        );
        assert_eq!(out, json!({"a": "r", "n": {"x": 1, "y": 2}, "meta": {"source": "gateway"}}));
    }

    #[test]
    fn add_through_a_scalar_is_skipped() {
        let body = json!({"a": 1});
        assert_eq!(run(body.clone(), &[BodyOp::Add(p("a.b"), json!(1))]), body);
    }

    #[test]
    fn append_makes_or_extends_arrays() {
        let body = json!({"s": "x", "l": [1], "o": {"k": true}});
        let out = run(
            body,
            &[
                BodyOp::Append(p("s"), json!("y")),
                BodyOp::Append(p("l"), json!(2)),
                BodyOp::Append(p("o.k"), json!(false)),
                BodyOp::Append(p("new"), json!("z")),
            ],
        );
        assert_eq!(out, json!({"s": ["x", "y"], "l": [1, 2], "o": {"k": [true, false]}, "new": "z"}));
    }

    #[test]
    fn copy_and_set_overwrite() {
        let body = json!({"a": {"b": [1, 2]}, "t": 0, "l": [0]});
        let out = run(
            body,
            &[
                BodyOp::Copy(p("a.b"), p("t")),
                BodyOp::Copy(p("a.b.1"), p("x.y")),
                BodyOp::Set(p("h"), json!("v")),
                BodyOp::Set(p("l.0"), json!(9)),
                BodyOp::Set(p("l.1"), json!(10)),
                BodyOp::Set(p("l.5"), json!(11)),
            ],
        );
        assert_eq!(out, json!({"a": {"b": [1, 2]}, "t": [1, 2], "x": {"y": 2}, "h": "v", "l": [9, 10]}));
    }

    #[test]
    fn root_arrays_are_addressed_by_index() {
        let out = run(json!([{"a": 1}, {"a": 2}]), &[BodyOp::Remove(p("1.a")), BodyOp::Add(p("0.b"), json!(3))]);
        assert_eq!(out, json!([{"a": 1, "b": 3}, {}]));
    }
}

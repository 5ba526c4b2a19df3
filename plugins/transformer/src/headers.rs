//! Header edits on an in-memory list (lowercase names), and the host calls that turn the
//! original list into the edited one.

/// Headers as `(lowercase name, value)`, in order.
pub type Headers = Vec<(String, String)>;

/// All values of `name`.
pub fn values(headers: &[(String, String)], name: &str) -> Vec<String> {
    headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
}

fn has(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n == name)
}

pub fn remove(headers: &mut Headers, name: &str) {
    headers.retain(|(n, _)| n != name);
}

/// Moves every value of `old` to `new` (replacing `new`'s values).
pub fn rename(headers: &mut Headers, old: &str, new: &str) {
    if old == new || !has(headers, old) {
        return;
    }
    remove(headers, new);
    for (n, _) in headers.iter_mut().filter(|(n, _)| n == old) {
        *n = new.to_owned();
    }
}

/// Sets `name` to `value` only if it exists (all its values become one).
pub fn replace(headers: &mut Headers, name: &str, value: &str) {
    if has(headers, name) {
        set(headers, name, &[value.to_owned()]);
    }
}

/// Adds `name: value` only if `name` is absent.
pub fn add(headers: &mut Headers, name: &str, value: &str) {
    if !has(headers, name) {
        headers.push((name.to_owned(), value.to_owned()));
    }
}

/// Adds one more value of `name` (or the first one).
pub fn append(headers: &mut Headers, name: &str, value: &str) {
    headers.push((name.to_owned(), value.to_owned()));
}

/// Replaces the values of `name` with `new_values` (none: removes it).
pub fn set(headers: &mut Headers, name: &str, new_values: &[String]) {
    remove(headers, name);
    headers.extend(new_values.iter().map(|v| (name.to_owned(), v.clone())));
}

/// A host operation on the header map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Remove(String),
    Set(String, String),
    Add(String, String),
}

/// The operations that turn `before` into `after`, per name whose values changed (values of
/// one name keep their order; the order between names is the host's).
pub fn diff(before: &[(String, String)], after: &[(String, String)]) -> Vec<Edit> {
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in before.iter().chain(after) {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let mut edits = Vec::new();
    for name in names {
        let old = values(before, name);
        let new = values(after, name);
        if old == new {
            continue;
        }
        let mut new = new.into_iter();
        match new.next() {
            None => edits.push(Edit::Remove(name.to_owned())),
            Some(first) => {
                edits.push(Edit::Set(name.to_owned(), first));
                edits.extend(new.map(|v| Edit::Add(name.to_owned(), v)));
            }
        }
    }
    edits
}

/// Whether a header value can be sent (no CR, LF or NUL).
pub fn valid_value(value: &str) -> bool {
    !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Whether `name` is a valid (lowercase, non-pseudo) header name: an HTTP token.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^')
                || matches!(b, b'_' | b'`' | b'|' | b'~')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn operations() {
        let mut hs = h(&[("x-old", "1"), ("x-old", "2"), ("x-env", "dev"), ("x-new", "stale"), ("x-list", "a")]);
        rename(&mut hs, "x-old", "x-new");
        assert_eq!(values(&hs, "x-new"), vec!["1", "2"]);
        assert!(values(&hs, "x-old").is_empty());
        replace(&mut hs, "x-env", "prod");
        replace(&mut hs, "x-missing", "v");
        add(&mut hs, "x-env", "no");
        add(&mut hs, "x-added", "1");
        append(&mut hs, "x-list", "b");
        append(&mut hs, "x-fresh", "c");
        remove(&mut hs, "x-new");
        assert_eq!(values(&hs, "x-env"), vec!["prod"]);
        assert!(values(&hs, "x-missing").is_empty());
        assert_eq!(values(&hs, "x-added"), vec!["1"]);
        assert_eq!(values(&hs, "x-list"), vec!["a", "b"]);
        assert_eq!(values(&hs, "x-fresh"), vec!["c"]);
        assert!(values(&hs, "x-new").is_empty());
        rename(&mut hs, "x-absent", "x-env");
        assert_eq!(values(&hs, "x-env"), vec!["prod"]);
    }

    #[test]
    fn diff_touches_only_changed_names() {
        let before = h(&[(":path", "/"), ("a", "1"), ("b", "1"), ("b", "2"), ("c", "x")]);
        let after = h(&[(":path", "/"), ("a", "1"), ("c", "y"), ("d", "1"), ("d", "2")]);
        assert_eq!(
            diff(&before, &after),
            vec![
                Edit::Remove("b".into()),
                Edit::Set("c".into(), "y".into()),
                Edit::Set("d".into(), "1".into()),
                Edit::Add("d".into(), "2".into()),
            ]
        );
        assert!(diff(&before, &before).is_empty());
    }

    #[test]
    fn names_and_values() {
        assert!(valid_name("x-user_id"));
        assert!(!valid_name("X-Upper"));
        assert!(!valid_name(":path"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
        assert!(valid_value("a, b"));
        assert!(!valid_value("a\r\nb"));
    }
}

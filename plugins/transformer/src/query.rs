//! Query parameter edits on a request path. Untouched parameters keep their position and
//! their original encoding; new names and values are percent-encoded.

/// One `key=value` segment of the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Param {
    /// The segment as written (what is sent back when untouched).
    raw: String,
    /// The decoded name.
    key: String,
    /// The decoded value (`""` for a bare `key`).
    value: String,
}

impl Param {
    fn parse(raw: &str) -> Param {
        let (key, value) = raw.split_once('=').unwrap_or((raw, ""));
        Param { raw: raw.to_owned(), key: decode(key), value: decode(value) }
    }

    fn new(key: &str, value: &str) -> Param {
        Param { raw: format!("{}={}", encode(key), encode(value)), key: key.to_owned(), value: value.to_owned() }
    }

    /// The same value under another name (the value keeps its original encoding).
    fn renamed(&self, key: &str) -> Param {
        let raw = match self.raw.split_once('=') {
            Some((_, value)) => format!("{}={value}", encode(key)),
            None => encode(key),
        };
        Param { raw, key: key.to_owned(), value: self.value.clone() }
    }
}

/// A request path split into the part before `?` and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    base: String,
    params: Vec<Param>,
}

impl Query {
    /// Parses `:path` (`/p?a=1&b=2`).
    pub fn parse(path: &str) -> Query {
        match path.split_once('?') {
            Some((base, query)) => Query {
                base: base.to_owned(),
                params: if query.is_empty() { Vec::new() } else { query.split('&').map(Param::parse).collect() },
            },
            None => Query { base: path.to_owned(), params: Vec::new() },
        }
    }

    /// The path with the current parameters.
    pub fn to_path(&self) -> String {
        if self.params.is_empty() {
            return self.base.clone();
        }
        let mut out = self.base.clone();
        out.push('?');
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(&p.raw);
        }
        out
    }

    fn has(&self, key: &str) -> bool {
        self.params.iter().any(|p| p.key == key)
    }

    /// The decoded values of `key`.
    pub fn values(&self, key: &str) -> Vec<String> {
        self.params.iter().filter(|p| p.key == key).map(|p| p.value.clone()).collect()
    }

    pub fn remove(&mut self, key: &str) {
        self.params.retain(|p| p.key != key);
    }

    /// Renames every `old` parameter in place (an existing `new` is dropped).
    pub fn rename(&mut self, old: &str, new: &str) {
        if old == new || !self.has(old) {
            return;
        }
        self.remove(new);
        for p in self.params.iter_mut().filter(|p| p.key == old) {
            *p = p.renamed(new);
        }
    }

    /// Sets `key` to `value` only if present: the first occurrence takes the value, the others go.
    pub fn replace(&mut self, key: &str, value: &str) {
        let Some(first) = self.params.iter().position(|p| p.key == key) else {
            return;
        };
        let mut at = 0;
        self.params.retain(|p| {
            let keep = p.key != key || at == first;
            at += 1;
            keep
        });
        if let Some(slot) = self.params.get_mut(first) {
            *slot = Param::new(key, value);
        }
    }

    /// Adds `key=value` at the end only if `key` is absent.
    pub fn add(&mut self, key: &str, value: &str) {
        if !self.has(key) {
            self.params.push(Param::new(key, value));
        }
    }

    /// Adds one more `key=value` at the end.
    pub fn append(&mut self, key: &str, value: &str) {
        self.params.push(Param::new(key, value));
    }

    /// Replaces the values of `key` (at the end; none: removes it).
    pub fn set(&mut self, key: &str, values: &[String]) {
        self.remove(key);
        self.params.extend(values.iter().map(|v| Param::new(key, v)));
    }
}

/// Percent-decodes a query component (`+` is a space); malformed escapes stay as they are.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1).and_then(|h| hex_val(*h)).zip(bytes.get(i + 2).and_then(|l| hex_val(*l)));
                if let Some((hi, lo)) = hex {
                    out.push((hi << 4) | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but the unreserved characters (`A-Z a-z 0-9 - . _ ~`).
pub fn encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_paths_round_trip() {
        for path in ["/", "/p", "/p?", "/p?a=1&b=%2F&c", "/p?a=1&&b=2", "/p?x=a+b%20c"] {
            let q = Query::parse(path);
            let expected = if path.ends_with('?') { path.trim_end_matches('?') } else { path };
            assert_eq!(q.to_path(), expected);
        }
    }

    #[test]
    fn values_are_decoded() {
        let q = Query::parse("/p?a=x+y%2Fz&a=2&b&c=%zz");
        assert_eq!(q.values("a"), vec!["x y/z", "2"]);
        assert_eq!(q.values("b"), vec![""]);
        assert_eq!(q.values("c"), vec!["%zz"]);
        assert!(q.values("d").is_empty());
    }

    #[test]
    fn operations_keep_order_and_encoding() {
        let mut q = Query::parse("/search?debug=1&q=a%2Fb&k2=v2&debug=2&page=3");
        q.remove("debug");
        assert_eq!(q.to_path(), "/search?q=a%2Fb&k2=v2&page=3");
        q.rename("q", "query");
        assert_eq!(q.to_path(), "/search?query=a%2Fb&k2=v2&page=3");
        q.replace("k2", "new value");
        q.replace("absent", "x");
        assert_eq!(q.to_path(), "/search?query=a%2Fb&k2=new%20value&page=3");
        q.add("page", "9");
        q.add("lang", "en/us");
        assert_eq!(q.to_path(), "/search?query=a%2Fb&k2=new%20value&page=3&lang=en%2Fus");
        q.append("page", "4");
        assert_eq!(q.values("page"), vec!["3", "4"]);
        q.set("copy", &q.values("query"));
        assert_eq!(q.to_path(), "/search?query=a%2Fb&k2=new%20value&page=3&lang=en%2Fus&page=4&copy=a%2Fb");
        q.remove("query");
        q.remove("k2");
        q.remove("page");
        q.remove("lang");
        q.remove("copy");
        assert_eq!(q.to_path(), "/search");
    }

    #[test]
    fn replace_collapses_repeats_in_place() {
        let mut q = Query::parse("/?a=1&b=2&a=3");
        q.replace("a", "x");
        assert_eq!(q.to_path(), "/?a=x&b=2");
    }

    #[test]
    fn rename_drops_an_existing_target_and_keeps_bare_keys() {
        let mut q = Query::parse("/?new=0&old=1&flag");
        q.rename("old", "new");
        q.rename("flag", "f g");
        assert_eq!(q.to_path(), "/?new=1&f%20g");
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("a b/c&d=é~"), "a%20b%2Fc%26d%3D%C3%A9~");
        assert_eq!(decode(&encode("a b/c&d=é~")), "a b/c&d=é~");
    }
}

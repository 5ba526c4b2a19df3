//! Maps a position in JSON text to the path of the value there (`consumers[0].name`), so a
//! deserialization error can name the field without wrapping the deserializer.

enum Frame {
    Object { key: Option<String> },
    Array { index: usize },
}

/// Byte offset of serde_json's 1-based `line`/`column`.
pub(crate) fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// The path of the innermost value that contains `offset`; `.` for the top level.
pub(crate) fn path_at(text: &str, offset: usize) -> String {
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut last_string: Option<String> = None;
    let mut i = 0;
    while i < bytes.len() && i < offset {
        match bytes[i] {
            b'{' => stack.push(Frame::Object { key: None }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                last_string = None;
                match stack.last_mut() {
                    Some(Frame::Array { index }) => *index += 1,
                    Some(Frame::Object { key }) => *key = None,
                    None => {}
                }
            }
            b':' => {
                if let Some(Frame::Object { key }) = stack.last_mut() {
                    *key = last_string.take();
                }
            }
            b'"' => {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                last_string = text.get(start..end.min(bytes.len())).map(str::to_string);
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    match stack.last_mut() {
        // serde_json reports a missing field at the object's closing brace: the object itself.
        Some(Frame::Object { key }) if bytes.get(offset) == Some(&b'}') => *key = None,
        // An error right after an object key (unknown field) belongs to that key.
        Some(Frame::Object { key }) if key.is_none() => *key = last_string,
        _ => {}
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k) } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    if path.is_empty() { ".".to_string() } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, marker: &str) -> String {
        path_at(text, text.find(marker).unwrap())
    }

    #[test]
    fn finds_paths() {
        let t = r#"{"a":1,"list":[{"x":true},{"y":"s,:{"}],"b":{"c":"#;
        assert_eq!(at(t, "1"), "a");
        assert_eq!(at(t, "true"), "list[0].x");
        assert_eq!(at(t, r#""s,"#), "list[1].y");
        assert_eq!(path_at(t, t.len()), "b.c");
        assert_eq!(path_at("{}", 0), ".");
        assert_eq!(path_at(r#"{"k":[1,2,"#, 10), "k[2]");
        // Missing fields are reported at the closing brace of the object that lacks them.
        assert_eq!(at(r#"{"a":1,"o":{"x":1}}"#, "}}"), "o");
        assert_eq!(at(r#"{"a":1}"#, "}"), ".");
    }

    #[test]
    fn offsets_from_line_and_column() {
        let t = "{\n  \"a\": x\n}";
        assert_eq!(&t[offset_of(t, 2, 8)..offset_of(t, 2, 8) + 1], "x");
        assert_eq!(offset_of(t, 1, 1), 0);
    }
}

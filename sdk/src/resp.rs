//! RESP2, the Redis wire format: encoding commands and decoding replies.

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisReply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`: an error answered by Redis.
    Error(String),
    Integer(i64),
    /// A bulk string; `None` is the nil reply.
    Bulk(Option<Vec<u8>>),
    /// An array; `None` is the nil array.
    Array(Option<Vec<RedisReply>>),
}

impl RedisReply {
    /// The reply as text, for status and bulk replies.
    pub fn as_text(&self) -> Option<String> {
        match self {
            RedisReply::Status(s) => Some(s.clone()),
            RedisReply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            RedisReply::Integer(i) => Some(*i),
            RedisReply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, RedisReply::Bulk(None) | RedisReply::Array(None))
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

const MAX_DEPTH: usize = 16;

/// Decodes one complete reply. Errors describe what is malformed.
pub fn decode_reply(input: &[u8]) -> Result<RedisReply, String> {
    let (reply, rest) = decode(input, 0)?;
    if !rest.is_empty() {
        return Err(format!("{} unexpected bytes after the reply", rest.len()));
    }
    Ok(reply)
}

fn decode(input: &[u8], depth: usize) -> Result<(RedisReply, &[u8]), String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deeply".into());
    }
    let (&kind, rest) = input.split_first().ok_or("empty reply")?;
    let (line, rest) = split_line(rest)?;
    let text = || String::from_utf8_lossy(line).into_owned();
    let number = || -> Result<i64, String> {
        std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad number `{}`", text()))
    };
    match kind {
        b'+' => Ok((RedisReply::Status(text()), rest)),
        b'-' => Ok((RedisReply::Error(text()), rest)),
        b':' => Ok((RedisReply::Integer(number()?), rest)),
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok((RedisReply::Bulk(None), rest));
            }
            let len = usize::try_from(len).map_err(|_| "bulk length out of range")?;
            if rest.len() < len + 2 || &rest[len..len + 2] != b"\r\n" {
                return Err("truncated bulk string".into());
            }
            Ok((RedisReply::Bulk(Some(rest[..len].to_vec())), &rest[len + 2..]))
        }
        b'*' => {
            let len = number()?;
            if len < 0 {
                return Ok((RedisReply::Array(None), rest));
            }
            // Each element takes at least 3 bytes, so a claimed length beyond that is a lie.
            let len = usize::try_from(len).map_err(|_| "array length out of range")?;
            if len > rest.len() / 3 {
                return Err("array longer than the reply".into());
            }
            let mut items = Vec::with_capacity(len);
            let mut rest = rest;
            for _ in 0..len {
                let (item, next) = decode(rest, depth + 1)?;
                items.push(item);
                rest = next;
            }
            Ok((RedisReply::Array(Some(items)), rest))
        }
        other => Err(format!("unknown reply type `{}`", other as char)),
    }
}

fn split_line(input: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let end = input.windows(2).position(|w| w == b"\r\n").ok_or("missing CRLF")?;
    Ok((&input[..end], &input[end + 2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        assert_eq!(encode_command(&["SET", "k", "v"]), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    }

    #[test]
    fn decodes_replies() {
        assert_eq!(decode_reply(b"+OK\r\n"), Ok(RedisReply::Status("OK".into())));
        assert_eq!(decode_reply(b"-ERR no\r\n"), Ok(RedisReply::Error("ERR no".into())));
        assert_eq!(decode_reply(b":42\r\n").map(|r| r.as_integer()), Ok(Some(42)));
        assert_eq!(decode_reply(b"$-1\r\n").map(|r| r.is_nil()), Ok(true));
        assert_eq!(
            decode_reply(b"*2\r\n$1\r\na\r\n:1\r\n"),
            Ok(RedisReply::Array(Some(vec![RedisReply::Bulk(Some(b"a".to_vec())), RedisReply::Integer(1)])))
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(decode_reply(b"$5\r\nab\r\n").is_err());
        assert!(decode_reply(b"*1000000000\r\n").is_err());
        assert!(decode_reply(b"?\r\n").is_err());
        assert!(decode_reply(b"+OK").is_err());
        assert!(decode_reply(b"+OK\r\nextra").is_err());
        let deep = "*1\r\n".repeat(40) + ":1\r\n";
        assert!(decode_reply(deep.as_bytes()).is_err());
    }
}

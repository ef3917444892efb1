//! Reading parameters out of a request's query string.
//!
//! Handlers read a parameter or two from the query string; a browser's
//! WebSocket API cannot set request headers, so for such clients the query
//! is often the only channel. This decodes the form-style encoding browsers
//! produce: '&'-separated pairs, '+' for a space and %XX escapes (the parts
//! of the WHATWG application/x-www-form-urlencoded parser we need).
//! Decoding is done on demand per name, not into a map, since a handler
//! reads one or two parameters of a query the peer controls.

/// First value of `name` in a query string, percent-decoded ('+' as
/// space); None if absent or not UTF-8 after decoding.
///
/// A '%' not followed by two hex digits is kept as it is, so a sloppy link
/// still yields a value rather than nothing.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let matches = !pair.is_empty() && percent_decode(key).as_deref() == Some(name);
        matches.then_some(value)
    })?;
    percent_decode(raw)
}

/// Decodes form-style escapes; None if the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();

    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match (byte, tail) {
            (b'+', _) => out.push(b' '),
            (b'%', [hi, lo, after @ ..]) => match (hex_value(*hi), hex_value(*lo)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    rest = after;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(byte),
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_decoding() {
        let cases = [
            ("room=lobby&name=a", "name", Some("a")),
            ("name=a&name=b", "name", Some("a")),
            ("x=1", "name", None),
            ("", "name", None),
            ("name", "name", Some("")),
            ("name=", "name", Some("")),
            ("&&name=x&", "name", Some("x")),
            ("name=a+b%20c", "name", Some("a b c")),
            ("na%6De=v", "name", Some("v")),
            ("name=%C3%A9t%C3%A9", "name", Some("été")),
            ("name=100%", "name", Some("100%")),
            ("name=%zz%4", "name", Some("%zz%4")),
            ("name=%2B%3D%26", "name", Some("+=&")),
            ("name=%FF", "name", None),
            ("name=%ff&name=ok", "name", None),
            ("a=b=c", "a", Some("b=c")),
        ];
        for (query, name, expected) in cases {
            assert_eq!(query_param(query, name).as_deref(), expected, "{query}");
        }
    }
}

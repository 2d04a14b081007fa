//! Finds the line of a value in a JSON text by its path, so that errors
//! found after parsing (a bad address, a duplicate name) can still name a
//! line. serde_json already reports lines for syntax and type errors.

/// One step of a path into a JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

/// The 1-based line on which the value at `path` starts, if it exists.
pub fn line_of(text: &str, path: &[Step<'_>]) -> Option<usize> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        at: 0,
        line: 1,
    };
    scanner.find(path, 0)
}

struct Scanner<'t> {
    bytes: &'t [u8],
    at: usize,
    line: usize,
}

/// Nesting deeper than this is not searched (the config is shallow).
const MAX_DEPTH: usize = 64;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        if byte == b'\n' {
            self.line += 1;
        }
        Some(byte)
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    /// Reads a string token and returns its raw (still escaped) contents.
    fn string(&mut self) -> Option<&[u8]> {
        if self.bump()? != b'"' {
            return None;
        }
        let start = self.at;
        loop {
            match self.bump()? {
                b'\\' => {
                    self.bump()?;
                }
                b'"' => return self.bytes.get(start..self.at - 1),
                _ => {}
            }
        }
    }

    /// Walks the value here; when `path` is empty it is the one sought.
    fn find(&mut self, path: &[Step<'_>], depth: usize) -> Option<usize> {
        self.skip_space();
        let Some((step, rest)) = path.split_first() else {
            return Some(self.line);
        };
        if depth > MAX_DEPTH {
            return None;
        }
        match (self.peek()?, step) {
            (b'{', Step::Key(wanted)) => {
                self.bump();
                // A key written twice: serde keeps the last value, so the
                // line is the last one's.
                let mut last = None;
                loop {
                    self.skip_space();
                    if self.peek()? == b'}' {
                        break;
                    }
                    let key = self.string()?;
                    let hit = key == wanted.as_bytes();
                    self.skip_space();
                    if self.bump()? != b':' {
                        return None;
                    }
                    if hit {
                        self.skip_space();
                        last = Some((self.at, self.line));
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_space();
                    match self.bump()? {
                        b',' => {}
                        b'}' => break,
                        _ => return None,
                    }
                }
                let (at, line) = last?;
                self.at = at;
                self.line = line;
                self.find(rest, depth + 1)
            }
            (b'[', Step::Index(wanted)) => {
                self.bump();
                let mut index = 0;
                loop {
                    self.skip_space();
                    if self.peek()? == b']' {
                        return None;
                    }
                    if index == *wanted {
                        return self.find(rest, depth + 1);
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_space();
                    if self.bump()? != b',' {
                        return None;
                    }
                    index += 1;
                }
            }
            _ => None,
        }
    }

    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_space();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.bump();
                loop {
                    self.skip_space();
                    match self.peek()? {
                        byte if byte == close => {
                            self.bump();
                            return Some(());
                        }
                        b',' | b':' => {
                            self.bump();
                        }
                        _ => self.skip_value(depth + 1)?,
                    }
                }
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                while !matches!(
                    self.peek()?,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'
                ) {
                    self.bump();
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{
  "node": "r1",
  "announce": {"count": 5},
  "services": [
    {"name": "web", "ip": "192.0.2.200",
     "interface": "eth0"},
    {
      "name": "web",
      "ip": "2001:db8::200", "interface": "eth0"
    }
  ]
}"#;

    #[test]
    fn finds_lines() {
        assert_eq!(line_of(TEXT, &[Step::Key("node")]), Some(2));
        assert_eq!(
            line_of(TEXT, &[Step::Key("announce"), Step::Key("count")]),
            Some(3)
        );
        let service = |i, key| {
            line_of(
                TEXT,
                &[Step::Key("services"), Step::Index(i), Step::Key(key)],
            )
        };
        assert_eq!(service(0, "ip"), Some(5));
        assert_eq!(service(0, "interface"), Some(6));
        assert_eq!(service(1, "name"), Some(8));
        assert_eq!(service(1, "interface"), Some(9));
        assert_eq!(
            line_of(TEXT, &[Step::Key("services"), Step::Index(1)]),
            Some(7)
        );
    }

    #[test]
    fn missing_or_broken() {
        assert_eq!(line_of(TEXT, &[Step::Key("nope")]), None);
        assert_eq!(
            line_of(TEXT, &[Step::Key("services"), Step::Index(2)]),
            None
        );
        assert_eq!(line_of(TEXT, &[Step::Key("node"), Step::Index(0)]), None);
        assert_eq!(
            line_of(
                "{\"a\": [1, {\"b\"",
                &[Step::Key("a"), Step::Index(1), Step::Key("c")]
            ),
            None
        );
        assert_eq!(line_of("", &[Step::Key("a")]), None);
        let deep = "[".repeat(1000);
        let path = [Step::Index(0); 100];
        assert_eq!(line_of(&deep, &path), None);
    }
}

//! A UCI file read exactly as OpenWrt's libuci reads it in its strict
//! mode (the `uci` tool's default): the same words, comments, quotes,
//! escapes, continuations, `;` separators, section merging, option and
//! list rules, and the same first error, with its reason, line and byte.
//!
//! libuci parses a line buffer in place, C string by C string; where its
//! results depend on that (a `;` right after an unquoted word is lost with
//! the rest of the line, because the word's terminating NUL lands on it),
//! this reader keeps the same buffer and the same positions, so it gives
//! the same results. The rules, each pinned by a test vector made with
//! OpenWrt's own tool (`tests/uci/`), are listed in docs/configuration.md.

/// The first error, as libuci reports it: `Parse error (REASON) at line
/// LINE, byte BYTE` (LINE counts the newline-terminated lines read so far,
/// BYTE is the offset in the logical line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub reason: &'static str,
    pub line: usize,
    pub byte: usize,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "parse error ({}) at line {}, byte {}",
            self.reason, self.line, self.byte
        )
    }
}

/// An option's value: a string, or a list of them. Values are bytes, as
/// in libuci (no UTF-8 check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    One(Vec<u8>),
    List(Vec<Vec<u8>>),
}

/// One option of a section, in libuci's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// `[A-Za-z0-9_]+`.
    pub name: String,
    pub value: Value,
    /// The line (1-based) that last set or extended it.
    pub line: usize,
}

/// One section, after merging repeated names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Printable ASCII (33..=126).
    pub kind: String,
    /// `[A-Za-z0-9_]+`, or None for an anonymous section.
    pub name: Option<String>,
    /// The name `config_load` sees: the name, or `cfgNNHHHH` for an
    /// anonymous section.
    pub uci_name: String,
    /// The line (1-based) of its first `config`.
    pub line: usize,
    pub options: Vec<Opt>,
}

/// Reads `input` as libuci's strict parser does.
pub fn parse(input: &[u8]) -> Result<Vec<Section>, SyntaxError> {
    let mut reader = Reader {
        input,
        at: 0,
        eof: false,
        buf: Vec::new(),
        pos: 0,
        filled: 0,
        line: 0,
        start_line: 1,
        sections: Vec::new(),
        created: 0,
        current: None,
    };
    while !reader.eof {
        reader.pos = 0;
        reader.start_line = reader.line + 1;
        reader.getln(0);
        if reader.char_at(0) != 0 {
            reader.parse_line()?;
        }
    }
    Ok(reader.sections)
}

struct Reader<'a> {
    input: &'a [u8],
    /// Next unread byte of `input`.
    at: usize,
    /// The whole input has been read (fgets hit the end).
    eof: bool,
    /// The logical line being parsed; a 0 byte ends a C string in it.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes read into `buf`.
    filled: usize,
    /// Newline-terminated lines read so far.
    line: usize,
    /// The line the logical line being parsed starts on.
    start_line: usize,
    sections: Vec<Section>,
    /// Sections created so far (the NN of anonymous names).
    created: usize,
    current: Option<usize>,
}

fn is_space(c: u8) -> bool {
    // C's isspace in the "C" locale.
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// djb2 over `text`, as libuci names anonymous sections.
fn djb(text: &str) -> u32 {
    text.bytes().fold(5381u32, |hash, byte| {
        (hash << 5).wrapping_add(hash).wrapping_add(u32::from(byte))
    })
}

/// libuci's uci_validate_str: names are `[A-Za-z0-9_]+` (`-` too for a
/// package), types any printable ASCII.
fn valid(text: &[u8], name: bool, package: bool) -> bool {
    !text.is_empty()
        && text.iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || c == b'_'
                || (c == b'-' && package)
                || (!name && (33..=126).contains(&c))
        })
}

impl Reader<'_> {
    fn char_at(&self, at: usize) -> u8 {
        self.buf.get(at).copied().unwrap_or(0)
    }

    fn cur(&self) -> u8 {
        self.char_at(self.pos)
    }

    fn set(&mut self, at: usize, c: u8) {
        if at >= self.buf.len() {
            self.buf.resize(at + 1, 0);
        }
        self.buf[at] = c;
    }

    fn error(&self, reason: &'static str) -> SyntaxError {
        SyntaxError {
            reason,
            line: self.line,
            byte: self.pos,
        }
    }

    /// Reads the next line into the buffer from `offset` on (fgets in a
    /// loop): a NUL byte cuts its line there and the next line joins on.
    fn getln(&mut self, offset: usize) {
        self.buf.truncate(offset);
        loop {
            if self.at >= self.input.len() {
                self.eof = true;
                return;
            }
            let rest = &self.input[self.at..];
            let end = rest
                .iter()
                .position(|&c| c == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let chunk = &rest[..end];
            self.at += end;
            let kept = chunk.iter().position(|&c| c == 0).unwrap_or(chunk.len());
            if kept == 0 {
                return;
            }
            self.buf.extend_from_slice(&chunk[..kept]);
            self.filled = self.buf.len();
            if kept == chunk.len() && chunk.last() == Some(&b'\n') {
                self.line += 1;
                return;
            }
            if kept == chunk.len() {
                // The last line, without a newline.
                self.eof = true;
                return;
            }
        }
    }

    fn skip_whitespace(&mut self) {
        while self.cur() != 0 && is_space(self.cur()) {
            self.pos += 1;
        }
    }

    /// After a backslash: true when the next character is taken as is,
    /// false when the backslash ended the line and the next one was read.
    fn backslash(&mut self) -> bool {
        self.pos += 1;
        let c = self.cur();
        if c == 0
            || c == b'\n'
            || (c == b'\r'
                && self.char_at(self.pos + 1) == b'\n'
                && self.char_at(self.pos + 2) == 0)
        {
            self.getln(self.pos);
            return false;
        }
        true
    }

    fn addc(&mut self, target: &mut usize) {
        let c = self.cur();
        self.set(*target, c);
        *target += 1;
        self.pos += 1;
    }

    fn double_quote(&mut self, target: &mut usize) -> Result<(), SyntaxError> {
        self.pos += 1;
        loop {
            match self.cur() {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                0 => {
                    self.getln(self.pos);
                    if self.cur() == 0 {
                        return Err(self.error("EOF with unterminated \""));
                    }
                }
                b'\\' => {
                    if self.backslash() {
                        self.addc(target);
                    }
                }
                _ => self.addc(target),
            }
        }
    }

    fn single_quote(&mut self, target: &mut usize) -> Result<(), SyntaxError> {
        self.pos += 1;
        loop {
            match self.cur() {
                b'\'' => {
                    self.pos += 1;
                    return Ok(());
                }
                0 => {
                    self.getln(self.pos);
                    if self.cur() == 0 {
                        return Err(self.error("EOF with unterminated '"));
                    }
                }
                _ => self.addc(target),
            }
        }
    }

    /// One word, its pieces joined, written in place from `target` on.
    fn word(&mut self, target: &mut usize) -> Result<(), SyntaxError> {
        let mut next = true;
        loop {
            match self.cur() {
                b'\'' => self.single_quote(target)?,
                b'"' => self.double_quote(target)?,
                b'#' => {
                    // A comment, even mid-word: the line ends here.
                    self.set(self.pos, 0);
                    break;
                }
                0 => break,
                b';' => {
                    next = false;
                    break;
                }
                b'\\' => {
                    if self.backslash() {
                        self.addc(target);
                    }
                }
                _ => self.addc(target),
            }
            if self.cur() == 0 || is_space(self.cur()) {
                break;
            }
        }
        if self.cur() != 0 && next {
            self.pos += 1;
        }
        self.set(*target, 0);
        Ok(())
    }

    /// The next argument (empty when there is none), as a copy.
    fn next_arg(
        &mut self,
        required: bool,
        name: bool,
        package: bool,
    ) -> Result<Vec<u8>, SyntaxError> {
        self.skip_whitespace();
        let start = self.pos;
        let mut target = start;
        if self.cur() == b';' {
            self.set(self.pos, 0);
            self.pos += 1;
        } else {
            self.word(&mut target)?;
        }
        let end = (start..).find(|&i| self.char_at(i) == 0).unwrap_or(start);
        let text = self.buf.get(start..end).unwrap_or_default().to_vec();
        if text.is_empty() {
            if required {
                return Err(self.error("insufficient arguments"));
            }
            return Ok(text);
        }
        if name && !valid(&text, true, package) {
            return Err(self.error("invalid character in name field"));
        }
        Ok(text)
    }

    fn assert_eol(&mut self) -> Result<(), SyntaxError> {
        self.skip_whitespace();
        if self.next_arg(false, false, false)?.is_empty() {
            Ok(())
        } else {
            Err(self.error("too many arguments"))
        }
    }

    /// Moves past the command word (strtok ended it with a NUL).
    fn past_command(&mut self, reason: &'static str) -> Result<(), SyntaxError> {
        let len = (self.pos..)
            .find(|&i| self.char_at(i) == 0)
            .unwrap_or(self.pos)
            - self.pos;
        if self.pos + len + 1 > self.filled {
            return Err(self.error(reason));
        }
        self.pos += len + 1;
        Ok(())
    }

    fn parse_line(&mut self) -> Result<(), SyntaxError> {
        self.skip_whitespace();
        loop {
            // strtok(" \t") from the current position.
            let mut start = self.pos;
            while matches!(self.char_at(start), b' ' | b'\t') {
                start += 1;
            }
            if self.char_at(start) == 0 {
                return Ok(());
            }
            let mut end = start;
            while !matches!(self.char_at(end), b' ' | b'\t' | 0) {
                end += 1;
            }
            if self.char_at(end) != 0 {
                self.set(end, 0);
            }
            let word = self.buf[start..end].to_vec();
            match word.as_slice() {
                [b'#', ..] => return Ok(()),
                b"p" | b"package" => {
                    self.past_command("package without name")?;
                    self.next_arg(true, true, true)?;
                    self.assert_eol()?;
                }
                b"c" | b"config" => self.config()?,
                b"o" | b"option" => self.option(false)?,
                b"l" | b"list" => self.option(true)?,
                _ => return Err(self.error("invalid command")),
            }
        }
    }

    fn config(&mut self) -> Result<(), SyntaxError> {
        let line = self.start_line;
        self.past_command("config without name")?;
        let kind = self.next_arg(true, false, false)?;
        if !valid(&kind, false, false) {
            return Err(self.error("invalid character in type field"));
        }
        let name = self.next_arg(false, true, false)?;
        self.assert_eol()?;
        // Both checked above: printable ASCII.
        let kind = String::from_utf8_lossy(&kind).into_owned();
        let name = String::from_utf8_lossy(&name).into_owned();
        if name.is_empty() {
            self.created += 1;
            let uci_name = format!("cfg{:02x}{:04x}", self.created, djb(&kind) & 0xffff);
            self.sections.push(Section {
                kind,
                name: None,
                uci_name,
                line,
                options: Vec::new(),
            });
            self.current = Some(self.sections.len() - 1);
            return Ok(());
        }
        match self.sections.iter().position(|s| s.uci_name == name) {
            Some(index) => {
                if self.sections[index].kind != kind {
                    return Err(self.error(
                        "section of different type overwrites prior section with same name",
                    ));
                }
                self.current = Some(index);
            }
            None => {
                self.created += 1;
                self.sections.push(Section {
                    kind,
                    name: Some(name.clone()),
                    uci_name: name,
                    line,
                    options: Vec::new(),
                });
                self.current = Some(self.sections.len() - 1);
            }
        }
        Ok(())
    }

    fn option(&mut self, list: bool) -> Result<(), SyntaxError> {
        let line = self.start_line;
        let Some(index) = self.current else {
            return Err(self.error("option/list command found before the first section"));
        };
        self.past_command("option without name")?;
        let name = self.next_arg(true, true, false)?;
        let value = self.next_arg(false, false, false)?;
        self.assert_eol()?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let options = &mut self.sections[index].options;
        let existing = options.iter_mut().find(|o| o.name == name);
        match (existing, list) {
            (Some(opt), true) => {
                let old = std::mem::replace(&mut opt.value, Value::List(Vec::new()));
                opt.value = match old {
                    Value::One(one) => Value::List(vec![one, value]),
                    Value::List(mut items) => {
                        items.push(value);
                        Value::List(items)
                    }
                };
                opt.line = line;
            }
            (None, true) => options.push(Opt {
                name,
                value: Value::List(vec![value]),
                line,
            }),
            // An empty value neither creates nor clears an option.
            (_, false) if value.is_empty() => {}
            (Some(opt), false) => {
                opt.value = Value::One(value);
                opt.line = line;
            }
            (None, false) => options.push(Opt {
                name,
                value: Value::One(value),
                line,
            }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    fn text(bytes: &[u8]) -> Json {
        match std::str::from_utf8(bytes) {
            Ok(text) => Json::from(text),
            Err(_) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                serde_json::json!({ "hex": hex })
            }
        }
    }

    /// What libuci's strict parser made of a file, in the vectors' form.
    fn as_vector(result: &Result<Vec<Section>, SyntaxError>) -> Json {
        match result {
            Err(e) => {
                serde_json::json!({"ok": false, "reason": e.reason, "line": e.line, "byte": e.byte})
            }
            Ok(sections) => {
                let sections: Vec<Json> = sections
                    .iter()
                    .map(|s| {
                        let mut options = serde_json::Map::new();
                        for o in &s.options {
                            let value = match &o.value {
                                Value::One(one) => text(one),
                                Value::List(items) => {
                                    Json::Array(items.iter().map(|i| text(i)).collect())
                                }
                            };
                            options.insert(o.name.clone(), value);
                        }
                        let mut section =
                            serde_json::json!({"type": s.kind, "name": s.name, "options": options});
                        if s.name.is_none() {
                            section["uci_name"] = Json::from(s.uci_name.clone());
                        }
                        section
                    })
                    .collect();
                serde_json::json!({"ok": true, "sections": sections})
            }
        }
    }

    /// The strict result of a vector, without what this reader does not
    /// report (the message text, the exit status).
    fn expected(vector: &Json) -> Json {
        let mut strict = vector["strict"].clone();
        if let Some(object) = strict.as_object_mut() {
            object.remove("error");
            object.remove("exit_status");
        }
        strict
    }

    #[test]
    fn every_vector_reads_as_openwrts_uci_reads_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/uci/cases");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("tests/uci/cases")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "uci"))
            .collect();
        names.sort();
        assert!(names.len() >= 60, "{} vectors", names.len());
        let mut wrong = Vec::new();
        for path in &names {
            let input = std::fs::read(path).expect("vector input");
            let vector: Json = serde_json::from_slice(
                &std::fs::read(path.with_extension("json")).expect("vector result"),
            )
            .expect("vector JSON");
            let got = as_vector(&parse(&input));
            let want = expected(&vector);
            if got != want {
                wrong.push(format!(
                    "{}:\n  got  {got}\n  want {want}",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} vectors differ:\n{}",
            wrong.len(),
            names.len(),
            wrong.join("\n")
        );
    }
}

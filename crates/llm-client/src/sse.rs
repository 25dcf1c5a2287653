//! An incremental Server-Sent Events parser for the `data:` payloads of a streamed completion.
//!
//! Network reads split the stream anywhere: inside a line, inside a UTF-8 character, between the
//! CR and LF of one line ending. The parser keeps the unfinished line as bytes and only decodes
//! whole lines, follows the event-stream grammar (CRLF, LF or CR line endings; `data:` with one
//! optional space; several `data:` lines joined by `\n`; comments and other fields ignored; an
//! event ends at a blank line), and bounds what it buffers so a hostile server cannot make it
//! grow without limit.

/// Why the stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SseError {
    /// One line, or one event's data, passed the limit.
    #[error("an SSE line or event is longer than {0} bytes")]
    TooLong(usize),
    /// A line was not UTF-8.
    #[error("an SSE line is not UTF-8")]
    NotUtf8,
}

/// Incremental parser state.
#[derive(Debug)]
pub(crate) struct SseParser {
    /// The current, unfinished line.
    line: Vec<u8>,
    /// The data lines of the current, unfinished event, joined by `\n`.
    data: String,
    /// Whether the current event has a `data` field at all (an empty `data:` line counts).
    has_data: bool,
    /// The previous chunk ended in CR, so a leading LF in the next one ends nothing.
    after_cr: bool,
    /// Limit on one line and on one event's data, in bytes.
    max_len: usize,
}

impl SseParser {
    /// A parser that refuses lines or events longer than `max_len` bytes.
    pub(crate) fn new(max_len: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            after_cr: false,
            max_len,
        }
    }

    /// Feeds one network read; appends the data of each event it completes to `out`.
    pub(crate) fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        let mut rest = bytes;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.push_bytes(&rest[..pos])?;
            self.end_line(out)?;
            let was_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.push_bytes(rest)
    }

    /// At the end of the stream: the data of an event the server did not close with a blank
    /// line. The specification discards it; servers that omit the final blank line exist, and
    /// their last event is usually `[DONE]`, so it is kept.
    pub(crate) fn finish(&mut self, out: &mut Vec<String>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.max_len {
            return Err(SseError::TooLong(self.max_len));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<String>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        // Comments (empty field name) and `event`, `id`, `retry` carry nothing we use.
        if field == "data" {
            let extra = value.len() + usize::from(self.has_data);
            if self.data.len() + extra > self.max_len {
                return Err(SseError::TooLong(self.max_len));
            }
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<String>) {
        if self.has_data {
            out.push(std::mem::take(&mut self.data));
            self.has_data = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Result<Vec<String>, SseError> {
        let mut parser = SseParser::new(1024);
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            parser.feed(chunk, &mut out)?;
        }
        parser.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let input = "data: {\"a\":1}\r\n\r\ndata: é€😀\n\n: keep-alive\n\ndata:x\rdata:y\r\rdata: [DONE]\n\n";
        let expected = vec![
            "{\"a\":1}".to_owned(),
            "é€😀".to_owned(),
            "x\ny".to_owned(),
            "[DONE]".to_owned(),
        ];
        for piece in 1..input.len() {
            assert_eq!(
                parse_in_pieces(input.as_bytes(), piece).expect("parses"),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let out = parse_in_pieces(b"data: {\ndata: \"k\": 2\ndata: }\n\n", 7).expect("parses");
        assert_eq!(out, vec!["{\n\"k\": 2\n}".to_owned()]);
    }

    #[test]
    fn other_fields_and_comments_are_ignored() {
        let out = parse_in_pieces(b"event: x\nid: 7\nretry: 10\n:c\ndata\n\n", 3).expect("parses");
        assert_eq!(out, vec![String::new()]);
        let none = parse_in_pieces(b"event: x\n\n\n\n", 2).expect("parses");
        assert!(none.is_empty());
    }

    #[test]
    fn an_unterminated_last_event_is_kept() {
        let out = parse_in_pieces(b"data: a\n\ndata: [DONE]", 4).expect("parses");
        assert_eq!(out, vec!["a".to_owned(), "[DONE]".to_owned()]);
    }

    #[test]
    fn over_long_lines_and_events_are_refused() {
        let mut parser = SseParser::new(16);
        let mut out = Vec::new();
        assert_eq!(
            parser.feed(&[b'a'; 17], &mut out),
            Err(SseError::TooLong(16))
        );
        let mut parser = SseParser::new(16);
        let many = b"data: 0123456789\ndata: 0123456789\n\n";
        assert_eq!(parser.feed(many, &mut out), Err(SseError::TooLong(16)));
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let mut parser = SseParser::new(64);
        let mut out = Vec::new();
        assert_eq!(
            parser.feed(b"data: \xff\xfe\n\n", &mut out),
            Err(SseError::NotUtf8)
        );
    }
}

//! The terminal of an interactive exec (`kubectl exec -it`): what a
//! terminal's line discipline does for a process, done by the node, since a
//! Wasm guest has no pseudo-terminal. The client's terminal is raw; here
//! typed characters are echoed, a line is edited (backspace, Ctrl-U, Ctrl-C)
//! and handed to the guest at Enter, Ctrl-D at the start of a line is the
//! end of input, and the guest's `\n` reaches the client as `\r\n`.
//!
//! Pure: bytes in, bytes out.

/// What one piece of typed input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Typed {
    /// To show on the client's screen.
    pub echo: Vec<u8>,
    /// Complete lines for the guest's stdin.
    pub lines: Vec<u8>,
    /// Whether input ended (Ctrl-D on an empty line).
    pub eof: bool,
}

/// A line being typed.
#[derive(Debug, Default)]
pub(crate) struct LineDiscipline {
    line: Vec<u8>,
}

impl LineDiscipline {
    /// Takes typed bytes.
    pub fn input(&mut self, bytes: &[u8]) -> Typed {
        let mut out = Typed::default();
        for &b in bytes {
            match b {
                b'\r' | b'\n' => {
                    out.echo.extend_from_slice(b"\r\n");
                    self.line.push(b'\n');
                    out.lines.append(&mut self.line);
                }
                // Backspace and DEL: one character back (a UTF-8 sequence
                // as a whole).
                0x08 | 0x7f => {
                    while let Some(c) = self.line.pop() {
                        if c & 0xC0 != 0x80 {
                            break;
                        }
                    }
                    out.echo.extend_from_slice(b"\x08 \x08");
                }
                // Ctrl-U: the whole line.
                0x15 => {
                    let chars = String::from_utf8_lossy(&self.line).chars().count();
                    self.line.clear();
                    for _ in 0..chars {
                        out.echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                // Ctrl-C: the line is dropped.
                0x03 => {
                    self.line.clear();
                    out.echo.extend_from_slice(b"^C\r\n");
                    out.lines.push(b'\n');
                }
                // Ctrl-D: the end of input on an empty line, else the line
                // as it is.
                0x04 => {
                    if self.line.is_empty() {
                        out.eof = true;
                        return out;
                    }
                    out.lines.append(&mut self.line);
                }
                // Escape sequences (arrows) are not line editing here.
                0x1b => {}
                c if c < 0x20 && c != b'\t' => {}
                c => {
                    self.line.push(c);
                    out.echo.push(c);
                }
            }
        }
        out
    }
}

/// The guest's output as a terminal shows it: `\n` becomes `\r\n`.
pub(crate) fn output(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_echoed_edited_and_handed_over_at_enter() {
        let mut ld = LineDiscipline::default();
        let t = ld.input(b"lx\x7fs");
        assert_eq!(t.echo, b"lx\x08 \x08s");
        assert!(t.lines.is_empty());
        let t = ld.input(b"\r");
        assert_eq!(t.lines, b"ls\n");
        assert_eq!(t.echo, b"\r\n");
        let t = ld.input(b"oops\x03");
        assert_eq!(t.lines, b"\n");
        assert!(!t.eof);
        assert!(ld.input(b"\x04").eof);
        assert_eq!(output(b"a\nb\n"), b"a\r\nb\r\n");
    }

    #[test]
    fn backspace_removes_a_whole_character() {
        let mut ld = LineDiscipline::default();
        ld.input("é".as_bytes());
        ld.input(b"\x7f");
        assert_eq!(ld.input(b"\r").lines, b"\n");
    }
}

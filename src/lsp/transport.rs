//! The stdio transport of `recspec lsp`: Content-Length framed JSON-RPC on stdin and stdout.
//!
//! `lsp-server`'s own stdio transport ends the connection at the first malformed frame (a bad
//! header, a body that is not JSON, a JSON value that is not a message): an editor extension
//! with a bug, or a fuzzer, would kill the server. This one answers such a frame with a JSON-RPC
//! error (`id` null: -32700 for text that is not JSON, -32600 for JSON that is not a message,
//! as the JSON-RPC 2.0 specification says) and reads on; a body larger than
//! [`MAX_MESSAGE_BYTES`] is skipped unread. A frame that cannot be skipped to its end within
//! [`MAX_SKIP_BYTES`] (a header line without an end, a Content-Length of 10^15) leaves no way to
//! find the next frame: it is answered with an error, reported on stderr, and the connection
//! ends, so that the editor sees the server stop rather than a server that silently reads
//! everything that follows as one body. Nothing it skips is held in memory. The server itself
//! runs on `lsp-server`'s in-memory [`Connection`], as before.

use lsp_server::{Connection, Message};
use std::io::{self, BufRead, Read, Write};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The largest message body read; a larger one is skipped and answered with an error.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The longest header line read whole.
const MAX_HEADER_BYTES: u64 = 8 << 10;

/// The most bytes skipped to reach the next frame (an over-long header line's rest, a body over
/// [`MAX_MESSAGE_BYTES`]); past it, the stream is given up.
pub(crate) const MAX_SKIP_BYTES: u64 = 1 << 30;

/// One frame of input.
#[derive(Debug, PartialEq)]
enum Frame {
    /// The input ended between frames.
    End,
    Body(Vec<u8>),
    /// A frame that cannot be read, and why.
    Bad(String),
    /// A frame whose end cannot be found: nothing after it can be read.
    Lost(String),
}

/// The writer thread, joined once the server has dropped its end of the connection.
pub(crate) struct Transport {
    writer: JoinHandle<io::Result<()>>,
}

impl Transport {
    /// Waits until everything the server sent is written.
    pub fn join(self) -> io::Result<()> {
        self.writer.join().unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked")))
    }
}

/// A connection on stdin and stdout; the reader thread ends at the end of input or after
/// forwarding `exit`, and is not joined (it may be blocked on stdin).
pub fn stdio() -> (Connection, Transport) {
    let (server, client) = Connection::memory();
    let out = Arc::new(Mutex::new(io::stdout()));
    let writer_out = out.clone();
    let receiver = client.receiver;
    let writer = std::thread::Builder::new()
        .name("recspec-lsp-writer".into())
        .spawn(move || {
            for message in receiver {
                let mut out = writer_out.lock().map_err(|_| io::Error::other("stdout lock poisoned"))?;
                message.write(&mut *out)?;
            }
            Ok(())
        })
        .expect("the writer thread starts");
    let sender = client.sender;
    std::thread::Builder::new()
        .name("recspec-lsp-reader".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut input = stdin.lock();
            loop {
                let (reply, last) = match read_frame(&mut input) {
                    Ok(Frame::End) | Err(_) => return,
                    Ok(Frame::Bad(message)) => (error_response(-32700, &message), false),
                    Ok(Frame::Lost(message)) => {
                        eprintln!("recspec lsp: {message}; the input cannot be read on, stopping");
                        (error_response(-32700, &message), true)
                    }
                    Ok(Frame::Body(body)) => match parse(&body) {
                        Ok(message) => {
                            let exit = matches!(&message, Message::Notification(n) if n.method == "exit");
                            if sender.send(message).is_err() || exit {
                                return;
                            }
                            continue;
                        }
                        Err((code, message)) => (error_response(code, &message), false),
                    },
                };
                let Ok(mut out) = out.lock() else { return };
                if write!(out, "Content-Length: {}\r\n\r\n{reply}", reply.len()).and_then(|_| out.flush()).is_err()
                    || last
                {
                    return;
                }
            }
        })
        .expect("the reader thread starts");
    (server, Transport { writer })
}

/// A message from a frame's body, or the JSON-RPC error code and message for it.
fn parse(body: &[u8]) -> Result<Message, (i64, String)> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| (-32700, format!("the message is not JSON: {e}")))?;
    serde_json::from_value(value)
        .map_err(|e| (-32600, format!("the JSON is not a request, response or notification: {e}")))
}

fn error_response(code: i64, message: &str) -> String {
    serde_json::json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } }).to_string()
}

/// Reads one frame: header lines (`Content-Length: N`, others ignored; `\r\n` or `\n`) up to a
/// blank line, then N bytes.
fn read_frame(input: &mut impl BufRead) -> io::Result<Frame> {
    let mut length: Option<Result<usize, String>> = None;
    let mut headers = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input.by_ref().take(MAX_HEADER_BYTES).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(if headers { Frame::Bad("the input ended inside a header".into()) } else { Frame::End });
        }
        if !line.ends_with(b"\n") && n as u64 == MAX_HEADER_BYTES {
            // An over-long header line: skip to its end, holding none of it.
            if !skip_line(input)? {
                return Ok(Frame::Lost(format!("a header line without an end within {MAX_SKIP_BYTES} bytes")));
            }
            headers = true;
            length = Some(Err(format!("a header line longer than {MAX_HEADER_BYTES} bytes")));
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if headers {
                break;
            }
            continue; // a stray blank line between frames
        }
        headers = true;
        if let Some((name, value)) = text.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| format!("Content-Length `{}` is not a size", value.trim())),
                );
            }
        }
    }
    match length {
        None => Ok(Frame::Bad("a message without a Content-Length header".into())),
        Some(Err(message)) => Ok(Frame::Bad(message)),
        Some(Ok(n)) if n as u64 > MAX_SKIP_BYTES => Ok(Frame::Lost(format!(
            "a message of {n} bytes; at most {MAX_MESSAGE_BYTES} are read and {MAX_SKIP_BYTES} skipped"
        ))),
        Some(Ok(n)) if n > MAX_MESSAGE_BYTES => {
            io::copy(&mut input.by_ref().take(n as u64), &mut io::sink())?;
            Ok(Frame::Bad(format!("a message of {n} bytes; at most {MAX_MESSAGE_BYTES} are read")))
        }
        Some(Ok(n)) => {
            let mut body = vec![0; n];
            match input.read_exact(&mut body) {
                Ok(()) => Ok(Frame::Body(body)),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Frame::End),
                Err(e) => Err(e),
            }
        }
    }
}

/// Consumes input up to and including the next newline, at most [`MAX_SKIP_BYTES`] bytes,
/// without holding it; `false` when no newline came within them (or the input ended).
fn skip_line(input: &mut impl BufRead) -> io::Result<bool> {
    let mut skipped = 0u64;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let (used, found) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        input.consume(used);
        skipped += used as u64;
        if found {
            return Ok(true);
        }
        if skipped > MAX_SKIP_BYTES {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str) -> Vec<Frame> {
        let mut r = io::Cursor::new(input.as_bytes().to_vec());
        let mut out = vec![];
        loop {
            match read_frame(&mut r).unwrap() {
                Frame::End => return out,
                f => out.push(f),
            }
        }
    }

    #[test]
    fn frames_are_read_leniently_and_bad_ones_reported() {
        let got = frames(
            "Content-Length: 2\r\n\r\n{}\n\nContent-Length: 3\n\nabcContent-Type: x\r\n\r\nContent-Length: x\r\n\r\nContent-Length: 1\r\n\r\n[",
        );
        assert_eq!(
            got,
            vec![
                Frame::Body(b"{}".to_vec()),
                Frame::Body(b"abc".to_vec()),
                Frame::Bad("a message without a Content-Length header".into()),
                Frame::Bad("Content-Length `x` is not a size".into()),
                Frame::Body(b"[".to_vec()),
            ]
        );
        assert_eq!(parse(b"{not json").unwrap_err().0, -32700);
        assert_eq!(parse(b"{\"foo\": 1}").unwrap_err().0, -32600);
        assert!(parse(b"{\"jsonrpc\": \"2.0\", \"method\": \"exit\"}").is_ok());
    }

    #[test]
    fn a_too_large_body_is_skipped_and_reading_goes_on() {
        let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
        let input = format!("Content-Length: {}\r\n\r\n{big}Content-Length: 2\r\n\r\n{{}}", big.len());
        let got = frames(&input);
        assert!(matches!(&got[0], Frame::Bad(m) if m.contains("at most")), "{:?}", got.first().map(|_| ()));
        assert_eq!(got[1], Frame::Body(b"{}".to_vec()));
    }

    /// A Content-Length past what can be skipped ends the stream at once instead of swallowing
    /// every later message; an over-long header line is skipped without being held.
    #[test]
    fn a_frame_that_cannot_be_skipped_ends_the_stream() {
        let got = frames("Content-Length: 1000000000000000\r\n\r\nContent-Length: 2\r\n\r\n{}");
        assert!(matches!(&got[0], Frame::Lost(m) if m.contains("1000000000000000 bytes")), "{got:?}");
        let long = "X-Long: ".to_string() + &"y".repeat(3 * MAX_HEADER_BYTES as usize);
        let got = frames(&format!("{long}\r\n\r\nContent-Length: 2\r\n\r\n{{}}"));
        assert_eq!(
            got,
            vec![
                Frame::Bad(format!("a header line longer than {MAX_HEADER_BYTES} bytes")),
                Frame::Body(b"{}".to_vec())
            ]
        );
        let mut unended = io::Cursor::new(vec![b'z'; 1000]);
        assert!(!skip_line(&mut unended).unwrap(), "no newline: nothing to resume at");
    }
}

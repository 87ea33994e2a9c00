//! `recspec lsp` driven by a scripted client over stdio: Content-Length framed JSON-RPC, every
//! read with a timeout so that a hang fails the test instead of blocking.

use crate::Scratch;
use lsp_types::Url;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: Receiver<Value>,
    /// Messages read while waiting for another.
    pending: VecDeque<Value>,
    next_id: i64,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_recspec"))
            .arg("lsp")
            .current_dir(crate::root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("recspec lsp starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        length = v.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("a Content-Length header")];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let msg: Value = serde_json::from_slice(&body).expect("a JSON message");
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Client { child, stdin, messages, pending: VecDeque::new(), next_id: 0 }
    }

    fn send(&mut self, msg: Value) {
        let text = serde_json::to_string(&msg).unwrap();
        let stdin = self.stdin.as_mut().expect("stdin open");
        write!(stdin, "Content-Length: {}\r\n\r\n{text}", text.len()).unwrap();
        stdin.flush().unwrap();
    }

    /// Writes raw bytes: frames as a broken client might send them.
    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and waits for its response; the whole response.
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.wait(|m| m["id"] == json!(id) && m.get("method").is_none())
    }

    /// The first message (pending or new) that `matches`, within the timeout.
    fn wait(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&matches) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            let msg = self.messages.recv_timeout(TIMEOUT).expect("the server answers within the timeout");
            if matches(&msg) {
                return msg;
            }
            self.pending.push_back(msg);
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &Url) -> Vec<Value> {
        let uri = json!(uri.as_str());
        let msg = self.wait(|m| m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri);
        msg["params"]["diagnostics"].as_array().cloned().unwrap_or_default()
    }

    /// Waits for the process to end; its exit code.
    fn exit_code(&mut self) -> i32 {
        drop(self.stdin.take());
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < TIMEOUT, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The LSP position (line, UTF-16 column; ASCII text) of `marker`'s `$0` in `text`.
fn position(text: &str, marker: &str) -> Value {
    let plain = marker.replace("$0", "");
    let at = text.find(&plain).unwrap_or_else(|| panic!("`{plain}` not found")) + marker.find("$0").unwrap();
    let line = text[..at].matches('\n').count();
    let character = at - text[..at].rfind('\n').map_or(0, |i| i + 1);
    json!({"line": line, "character": character})
}

fn at(uri: &Url, text: &str, marker: &str) -> Value {
    json!({"textDocument": {"uri": uri.as_str()}, "position": position(text, marker)})
}

fn open(client: &mut Client, uri: &Url, text: &str) {
    let doc = json!({"uri": uri.as_str(), "languageId": "recspec", "version": 1, "text": text});
    client.notify("textDocument/didOpen", json!({"textDocument": doc}));
}

fn change(client: &mut Client, uri: &Url, version: i32, text: &str) {
    let params = json!({"textDocument": {"uri": uri.as_str(), "version": version}, "contentChanges": [{"text": text}]});
    client.notify("textDocument/didChange", params);
}

fn initialize(client: &mut Client) {
    let root = Url::from_file_path(crate::root()).unwrap();
    let init = client.request("initialize", json!({"processId": null, "rootUri": root.as_str(), "capabilities": {}}));
    let caps = &init["result"]["capabilities"];
    assert_eq!(caps["hoverProvider"], json!(true), "{init}");
    assert_eq!(caps["definitionProvider"], json!(true));
    assert_eq!(caps["textDocumentSync"], json!(1), "full text sync");
    client.notify("initialized", json!({}));
}

fn shutdown(mut client: Client) {
    let r = client.request("shutdown", Value::Null);
    assert_eq!(r["result"], Value::Null, "{r}");
    assert!(r.get("error").is_none());
    client.notify("exit", Value::Null);
    assert_eq!(client.exit_code(), 0);
}

#[test]
fn lsp_session_on_dfn() {
    let path = crate::root().join("specs/dfn.recspec");
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = Url::from_file_path(&path).unwrap();
    let mut client = Client::start();
    initialize(&mut client);
    open(&mut client, &uri, &text);
    assert_eq!(client.diagnostics(&uri), Vec::<Value>::new(), "dfn is clean");

    let h = client.request("textDocument/hover", at(&uri, &text, "let $0t = items(item);"));
    let value = h["result"]["contents"]["value"].as_str().unwrap_or_default();
    assert!(value.contains("float[B, D=64]"), "{h}");
    let line = position(&text, "let $0t = items(item);")["line"].clone();
    assert_eq!(h["result"]["range"]["start"]["line"], line);

    // Inside the block applied three times: each application's type.
    let h = client.request("textDocument/hover", at(&uri, &text, "let po$0sitioned"));
    let value = h["result"]["contents"]["value"].as_str().unwrap_or_default();
    assert!(value.contains("`float[B, T + 1=31, 2*D=128]`"), "{h}");

    let d = client.request("textDocument/definition", at(&uri, &text, "let t = $0items(item);"));
    assert_eq!(d["result"]["uri"], json!(uri.as_str()), "{d}");
    assert_eq!(d["result"]["range"]["start"], position(&text, "let $0items = Embedding"));

    let r = client.request(
        "textDocument/references",
        json!({"textDocument": {"uri": uri.as_str()}, "position": position(&text, "let $0u = items"),
               "context": {"includeDeclaration": true}}),
    );
    assert_eq!(r["result"].as_array().map(Vec::len), Some(4), "u: its let and three uses: {r}");

    let c = client.request("textDocument/completion", at(&uri, &text, "let items = Embedding($0vocab"));
    let labels: Vec<&str> = c["result"].as_array().unwrap().iter().filter_map(|i| i["label"].as_str()).collect();
    assert!(labels.contains(&"vocab") && labels.contains(&"dim"), "{labels:?}");

    // Hover on whitespace or a comment: null, not an error.
    let h = client.request("textDocument/hover", at(&uri, &text, "// DFN$0:"));
    assert_eq!(h["result"], Value::Null, "{h}");

    // An error appears with `check`'s code and message, and disappears when fixed.
    let broken = text.replace("let t = items(item);", "let t = items(itemz);");
    change(&mut client, &uri, 2, &broken);
    let diags = client.diagnostics(&uri);
    let undefined = diags.iter().find(|d| d["code"] == "E0005").unwrap_or_else(|| panic!("{diags:?}"));
    assert!(undefined["message"].as_str().unwrap().starts_with("`itemz` is not defined"), "{undefined}");
    assert_eq!(undefined["range"]["start"], position(&broken, "items($0itemz)"));
    assert_eq!(undefined["severity"], json!(1));

    // A syntax error: one E0001, and completion still answers from the last text that parsed.
    let unparsable = text.replace("let t = items(item);", "let t = items(item);\n  let z = Linear(");
    change(&mut client, &uri, 3, &unparsable);
    let diags = client.diagnostics(&uri);
    assert!(diags.iter().any(|d| d["code"] == "E0001"), "{diags:?}");
    let c = client.request("textDocument/completion", at(&uri, &unparsable, "let z = Linear($0"));
    let labels: Vec<&str> = c["result"].as_array().unwrap().iter().filter_map(|i| i["label"].as_str()).collect();
    assert!(labels.contains(&"out") && labels.contains(&"bias") && labels.contains(&"items"), "{labels:?}");
    let h = client.request("textDocument/hover", at(&uri, &unparsable, "let z = Lin$0ear("));
    assert_eq!(h["result"], Value::Null, "{h}");

    change(&mut client, &uri, 4, &text);
    assert_eq!(client.diagnostics(&uri), Vec::<Value>::new(), "cleared when fixed");

    // Formatting: the shipped spec is formatted (no edits); a messy text gets one whole-text edit
    // holding `recspec fmt`'s output; text that does not parse gets none.
    let format = |client: &mut Client| {
        client.request(
            "textDocument/formatting",
            json!({"textDocument": {"uri": uri.as_str()}, "options": {"tabSize": 2, "insertSpaces": true}}),
        )
    };
    assert_eq!(format(&mut client)["result"], json!([]));
    let messy = text.replace("let t = items(item);", "let   t=items( item ) ;");
    change(&mut client, &uri, 5, &messy);
    let f = format(&mut client);
    let edits = f["result"].as_array().unwrap_or_else(|| panic!("{f}"));
    assert_eq!(edits.len(), 1, "{f}");
    assert_eq!(edits[0]["newText"], json!(text), "the edit restores the canonical text");
    assert_eq!(edits[0]["range"]["start"], json!({"line": 0, "character": 0}));
    change(&mut client, &uri, 6, &unparsable);
    assert_eq!(format(&mut client)["result"], Value::Null);
    change(&mut client, &uri, 7, &text);

    let unknown = client.request("textDocument/noSuchRequest", json!({}));
    assert_eq!(unknown["error"]["code"], json!(-32601), "{unknown}");
    shutdown(client);
}

/// A block library opened beside the spec that imports it: the spec reads the library's unsaved
/// text, and the library's errors are published to the library.
#[test]
fn lsp_uses_unsaved_imports_and_publishes_their_diagnostics() {
    let dir = Scratch::new("lsp");
    let lib = "block Tower(units: int)(x: float[B, N]) -> float[B, 1] {\n  let h = Linear(out: units)(x);\n  return Linear(out: 1)(h);\n}\n";
    let main = "import \"lib.recspec\";\n\nmodel m {\n  dim D = 8;\n  input x: float[B, D];\n  label click;\n  output p = sigmoid(Tower(units: 4)(x));\n  loss click = bce(p, label: click);\n}\n";
    std::fs::write(dir.join("lib.recspec"), lib).unwrap();
    std::fs::write(dir.join("main.recspec"), main).unwrap();
    let lib_uri = Url::from_file_path(canonical(&dir.join("lib.recspec"))).unwrap();
    let main_uri = Url::from_file_path(canonical(&dir.join("main.recspec"))).unwrap();

    let mut client = Client::start();
    initialize(&mut client);
    open(&mut client, &main_uri, main);
    assert_eq!(client.diagnostics(&main_uri), Vec::<Value>::new());
    open(&mut client, &lib_uri, lib);
    assert_eq!(client.diagnostics(&lib_uri), Vec::<Value>::new());

    // The library's port, hovered in the library, has the type the spec applies it to.
    let h = client.request("textDocument/hover", at(&lib_uri, lib, "(x$0: float[B, N])"));
    assert!(h["result"]["contents"]["value"].as_str().unwrap_or_default().contains("float[B, D=8]"), "{h}");
    // The import string leads to the library; the block name too.
    let d = client.request("textDocument/definition", at(&main_uri, main, "import \"lib$0.recspec\""));
    assert_eq!(d["result"]["uri"], json!(lib_uri.as_str()), "{d}");
    let d = client.request("textDocument/definition", at(&main_uri, main, "sigmoid(Tow$0er("));
    assert_eq!(d["result"]["uri"], json!(lib_uri.as_str()), "{d}");
    assert_eq!(d["result"]["range"]["start"], position(lib, "block $0Tower"));

    // An unsaved mistake in the library (the disk still holds the good text) is reported in
    // the library, where the spec's application puts it.
    let bad = lib.replace("Linear(out: 1)(h)", "Linear(out: 1)(h, h)");
    change(&mut client, &lib_uri, 2, &bad);
    let lib_diags = client.diagnostics(&lib_uri);
    assert!(lib_diags.iter().any(|d| d["code"] == "E0010"), "{lib_diags:?}");
    // Fixed in the editor: cleared everywhere.
    change(&mut client, &lib_uri, 3, lib);
    assert_eq!(client.diagnostics(&lib_uri), Vec::<Value>::new());
    assert_eq!(client.diagnostics(&main_uri), Vec::<Value>::new());
    shutdown(client);
}

#[test]
fn lsp_exit_without_shutdown_is_code_1() {
    let mut client = Client::start();
    initialize(&mut client);
    client.notify("exit", Value::Null);
    assert_eq!(client.exit_code(), 1);
}

/// A Content-Length of 10^15 cannot be skipped: the server answers an error and stops while the
/// client still holds its input open, instead of reading every later message as that body.
#[test]
fn lsp_stops_at_a_frame_it_cannot_skip() {
    let mut client = Client::start();
    initialize(&mut client);
    client.send_raw(b"Content-Length: 1000000000000000\r\n\r\n");
    let error = client.wait(|m| m["error"]["code"] == json!(-32700));
    assert!(error["error"]["message"].as_str().unwrap().contains("1000000000000000 bytes"), "{error}");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = client.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < TIMEOUT, "the server went on reading a body it cannot skip");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "stopped without shutdown");
}

fn canonical(p: &Path) -> std::path::PathBuf {
    p.canonicalize().unwrap()
}

/// The VS Code package: its manifest starts `recspec lsp` for `.recspec` files, and its grammar
/// highlights every op of the catalogue.
#[test]
fn editor_package_matches_the_language() {
    let dir = crate::root().join("editors/vscode");
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let manifest: Value = serde_json::from_str(&read("package.json")).expect("package.json is JSON");
    assert_eq!(manifest["contributes"]["languages"][0]["extensions"], json!([".recspec"]));
    assert!(manifest["dependencies"]["vscode-languageclient"].is_string());
    assert!(read(manifest["main"].as_str().unwrap()).contains("[\"lsp\""));
    let grammar: Value = serde_json::from_str(&read("syntaxes/recspec.tmLanguage.json")).expect("grammar is JSON");
    let calls = grammar["repository"]["calls"].to_string();
    for op in recspec::ops::Op::callable_names() {
        assert!(
            calls.contains(&format!("|{op}|"))
                || calls.contains(&format!("({op}|"))
                || calls.contains(&format!("|{op})")),
            "the grammar lacks `{op}`"
        );
    }
    let _: Value = serde_json::from_str(&read("language-configuration.json")).expect("language configuration is JSON");
}

/// Resident memory of a process, in KiB (`VmRSS` of /proc/PID/status).
#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The server fed as an attacker would: 3,000 random edits of DFN (insertions of tokens,
/// punctuation, digits, non-ASCII text and control characters, deletions, truncations), random
/// text documents, requests at random positions (in range or far outside it), and well-framed
/// JSON-RPC messages of the wrong shape, and frames that are not JSON-RPC at all (bad headers,
/// bodies that are not JSON). It answers every request, reports errors as errors, never exits,
/// and its memory stays flat (the last 1,500 edits grow it by less than 32 MiB).
#[cfg(target_os = "linux")]
#[test]
fn lsp_survives_random_edits_text_and_malformed_messages_with_flat_memory() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    const PIECES: [&str; 24] = [
        "let ",
        "x",
        " = ",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ";",
        ",",
        ":",
        "Embedding(",
        "vocab: V",
        "dim: D",
        "model ",
        "\"",
        "é",
        "日本",
        "\u{0}",
        "\t",
        "\n",
        "99999999999999999999",
        "import \"nope.recspec\";",
    ];
    let base = std::fs::read_to_string(crate::root().join("specs/dfn.recspec")).unwrap();
    let uri = Url::from_file_path(crate::root().join("specs/fuzzed.recspec")).unwrap();
    let mut client = Client::start();
    let pid = client.child.id();
    initialize(&mut client);
    open(&mut client, &uri, &base);
    let mut text = base.clone();
    let mut halfway = 0;
    for edit in 0..3000 {
        let chars: Vec<char> = text.chars().collect();
        let at = next(chars.len() + 1);
        text = match next(10) {
            0..=5 => {
                let piece = PIECES[next(PIECES.len())];
                chars[..at].iter().collect::<String>() + piece + &chars[at..].iter().collect::<String>()
            }
            6..=7 => {
                let end = (at + next(12)).min(chars.len());
                chars[..at].iter().chain(&chars[end..]).collect()
            }
            8 => chars[..at].iter().collect(),
            _ if next(4) == 0 => base.clone(),
            _ => (0..next(200)).map(|_| char::from_u32(next(0x3000) as u32).unwrap_or('?')).collect(),
        };
        change(&mut client, &uri, edit + 2, &text);
        if edit % 25 == 0 {
            let line = next(text.lines().count() + 5) as u32;
            let character = next(120) as u32;
            let method =
                ["textDocument/hover", "textDocument/definition", "textDocument/completion", "textDocument/references"]
                    [next(4)];
            let mut params =
                json!({"textDocument": {"uri": uri.as_str()}, "position": {"line": line, "character": character}});
            if method == "textDocument/references" {
                params["context"] = json!({"includeDeclaration": true});
            }
            let r = client.request(method, params);
            assert!(r.get("result").is_some() || r.get("error").is_some(), "{method} at edit {edit}: {r}");
        }
        if edit == 1500 {
            halfway = rss_kib(pid);
        }
    }
    // Well-framed messages of the wrong shape: answered with errors, or ignored if notifications.
    for bad in [
        json!({"jsonrpc": "2.0", "id": 9001, "method": "textDocument/hover", "params": {"textDocument": 3}}),
        json!({"jsonrpc": "2.0", "id": 9002, "method": "textDocument/definition"}),
        json!({"jsonrpc": "2.0", "id": 9003, "method": "no/such/method", "params": {}}),
        json!({"jsonrpc": "2.0", "id": "text-id", "method": "textDocument/completion", "params": {"textDocument": {"uri": "not a uri"}, "position": {"line": -1, "character": 0}}}),
        json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"contentChanges": 5}}),
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": uri.as_str()}}}),
        json!({"jsonrpc": "2.0", "id": 9004, "method": "textDocument/hover", "params": {"textDocument": {"uri": "file:///nowhere/x.recspec"}, "position": {"line": 0, "character": 0}}}),
    ] {
        let id = bad.get("id").cloned();
        client.send(bad);
        if let Some(id) = id {
            let r = client.wait(|m| m["id"] == id && m.get("method").is_none());
            assert!(r.get("result").is_some() || r.get("error").is_some(), "{r}");
        }
    }
    // Frames that are not JSON-RPC: each answered with an error (id null), and reading goes on.
    for (raw, code) in [
        (&b"Content-Length: 9\r\n\r\n{not json"[..], -32700),
        (&b"Content-Length: 10\r\n\r\n{\"foo\": 1}"[..], -32600),
        (&b"Content-Type: text\r\n\r\n"[..], -32700),
        (&b"Content-Length: many\r\n\r\n"[..], -32700),
        (&b"Content-Length: 4\r\n\r\n\xff\xfe\x00\x01"[..], -32700),
    ] {
        client.send_raw(raw);
        let r = client.wait(|m| m["id"].is_null() && m.get("error").is_some());
        assert_eq!(r["error"]["code"], code, "{r}");
    }
    change(&mut client, &uri, 9999, &base);
    let r = client.request("textDocument/hover", at(&uri, &base, "model $0"));
    assert!(r.get("result").is_some(), "still answering: {r}");
    let end = rss_kib(pid);
    assert!(end < halfway + 32 * 1024, "memory grew from {halfway} KiB to {end} KiB over the last 1,500 edits");
    shutdown(client);
}

//! `recspec lsp`: a Language Server over stdio (rust-analyzer's `lsp-server` scaffold, messages
//! typed by `lsp-types`). The protocol only: every answer comes from [`crate::ide`].
//!
//! Open documents are held in memory and stand in for their files on disk. After every change
//! each open document is analysed again as a root (imports included, read from the open
//! documents where they are open), and diagnostics are published per file, imported files
//! included; files that no longer have any get an empty list. Requests are answered from the
//! latest analysis; completion falls back to the last one that parsed while the text does not.
//!
//! A request is a match arm in [`Server::dispatch`] and a method taking its params; a capability
//! in [`capabilities`] announces it. A request that fails or panics is answered with an error,
//! and the server goes on.

mod convert;
mod transport;

use crate::ide::{self, Analysis};
use crate::load::Overlay;
use crate::source::FileId;
use convert::Uris;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types as lsp;
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use lsp_types::Url;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::rc::Rc;

/// The connection failed: a malformed message or a closed stream.
#[derive(Debug)]
pub enum LspError {
    Protocol(lsp_server::ProtocolError),
    Io(std::io::Error),
}

impl fmt::Display for LspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LspError::Protocol(e) => write!(f, "language server protocol: {e}"),
            LspError::Io(e) => write!(f, "language server I/O: {e}"),
        }
    }
}

impl std::error::Error for LspError {}

/// Serves the protocol on stdin and stdout until the client says `exit`. `Ok(true)` when a
/// `shutdown` request came first (exit code 0), `Ok(false)` when it did not (exit code 1).
pub fn run_stdio() -> Result<bool, LspError> {
    let (connection, transport) = transport::stdio();
    let result = serve(connection);
    transport.join().map_err(LspError::Io)?;
    result
}

/// Serves the protocol on a connection: the handshake, then messages until `exit`.
pub fn serve(connection: Connection) -> Result<bool, LspError> {
    let (id, _params) = connection.initialize_start().map_err(LspError::Protocol)?;
    let init = lsp::InitializeResult {
        capabilities: capabilities(),
        server_info: Some(lsp::ServerInfo {
            name: "recspec".to_string(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        }),
    };
    let init = serde_json::to_value(init).unwrap_or_default();
    connection.initialize_finish(id, init).map_err(LspError::Protocol)?;
    let mut server = Server::new(connection);
    server.run()
}

/// What the server answers.
pub fn capabilities() -> lsp::ServerCapabilities {
    lsp::ServerCapabilities {
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Kind(lsp::TextDocumentSyncKind::FULL)),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        definition_provider: Some(lsp::OneOf::Left(true)),
        references_provider: Some(lsp::OneOf::Left(true)),
        document_formatting_provider: Some(lsp::OneOf::Left(true)),
        completion_provider: Some(lsp::CompletionOptions {
            trigger_characters: Some(vec!["(".into(), ",".into(), ":".into(), "\"".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A request failed: the code and message of the error response.
struct RequestError(ErrorCode, String);

struct Server {
    connection: Connection,
    /// Open documents and their current text.
    docs: BTreeMap<Url, String>,
    /// The latest analysis of each open document as a root.
    analyses: HashMap<Url, Rc<Analysis>>,
    /// The latest analysis of each open document whose own text parsed.
    parsed: HashMap<Url, Rc<Analysis>>,
    /// The open documents by canonical path.
    open: HashMap<PathBuf, Url>,
    /// Files the client holds diagnostics for.
    published: BTreeSet<Url>,
    shutdown: bool,
}

impl Server {
    fn new(connection: Connection) -> Server {
        Server {
            connection,
            docs: BTreeMap::new(),
            analyses: HashMap::new(),
            parsed: HashMap::new(),
            open: HashMap::new(),
            published: BTreeSet::new(),
            shutdown: false,
        }
    }

    fn run(&mut self) -> Result<bool, LspError> {
        while let Ok(msg) = self.connection.receiver.recv() {
            match msg {
                Message::Request(req) => {
                    let response = if self.shutdown {
                        Response::new_err(
                            req.id,
                            ErrorCode::InvalidRequest as i32,
                            "the server is shutting down".into(),
                        )
                    } else if req.method == lsp::request::Shutdown::METHOD {
                        self.shutdown = true;
                        Response::new_ok(req.id, ())
                    } else {
                        self.request(req)
                    };
                    self.send(response.into())?;
                }
                Message::Notification(n) if n.method == lsp::notification::Exit::METHOD => return Ok(self.shutdown),
                Message::Notification(n) => self.notification(n)?,
                Message::Response(_) => {}
            }
        }
        // The client closed the stream without `exit`.
        Ok(false)
    }

    fn send(&self, msg: Message) -> Result<(), LspError> {
        self.connection
            .sender
            .send(msg)
            .map_err(|e| LspError::Io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string())))
    }

    fn request(&mut self, req: Request) -> Response {
        let id: RequestId = req.id.clone();
        match catch_unwind(AssertUnwindSafe(|| self.dispatch(req))) {
            Ok(Ok(value)) => Response { id, response_result: Ok(value) },
            Ok(Err(RequestError(code, message))) => Response::new_err(id, code as i32, message),
            Err(_) => {
                Response::new_err(id, ErrorCode::InternalError as i32, "internal error (see the server's log)".into())
            }
        }
    }

    /// Routes a request to its method.
    fn dispatch(&mut self, req: Request) -> Result<serde_json::Value, RequestError> {
        use lsp::request::*;
        match req.method.as_str() {
            HoverRequest::METHOD => handle::<HoverRequest>(req, |p| self.hover(p)),
            GotoDefinition::METHOD => handle::<GotoDefinition>(req, |p| self.definition(p)),
            References::METHOD => handle::<References>(req, |p| self.references(p)),
            Completion::METHOD => handle::<Completion>(req, |p| self.completion(p)),
            Formatting::METHOD => handle::<Formatting>(req, |p| self.format(p)),
            method => Err(RequestError(ErrorCode::MethodNotFound, format!("unsupported request `{method}`"))),
        }
    }

    fn notification(&mut self, n: Notification) -> Result<(), LspError> {
        use lsp::notification::*;
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp::DidOpenTextDocumentParams>(n.params) {
                    self.docs.insert(p.text_document.uri, p.text_document.text);
                }
            }
            DidChangeTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp::DidChangeTextDocumentParams>(n.params) {
                    // Full sync: the last change holds the whole text.
                    if let Some(change) = p.content_changes.into_iter().last() {
                        self.docs.insert(p.text_document.uri, change.text);
                    }
                }
            }
            DidCloseTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp::DidCloseTextDocumentParams>(n.params) {
                    self.docs.remove(&p.text_document.uri);
                    self.parsed.remove(&p.text_document.uri);
                }
            }
            // Saving changes nothing the open text did not already say.
            _ => return Ok(()),
        }
        self.refresh()
    }

    /// The document in `recspec fmt`'s layout, as one edit of the whole text; no edit when it is
    /// formatted already, and none for text that does not parse (its syntax error is published).
    fn format(&self, p: lsp::DocumentFormattingParams) -> Option<Vec<lsp::TextEdit>> {
        let text = self.docs.get(&p.text_document.uri)?;
        let formatted = crate::fmt::format(FileId(0), text).ok()?;
        if &formatted == text {
            return Some(vec![]);
        }
        let end = ide::line_index::LineIndex::new(text).line_col(text.len());
        let range = lsp::Range::new(lsp::Position::new(0, 0), lsp::Position::new(end.line, end.col));
        Some(vec![lsp::TextEdit::new(range, formatted)])
    }

    /// Analyses every open document again and publishes every file's diagnostics.
    fn refresh(&mut self) -> Result<(), LspError> {
        self.open = self.docs.keys().map(|uri| (convert::canonical(convert::path_of(uri)), uri.clone())).collect();
        let overlay: Overlay =
            self.docs.iter().map(|(uri, text)| (convert::canonical(convert::path_of(uri)), text.clone())).collect();
        self.analyses.clear();
        for uri in self.docs.keys() {
            let path = convert::path_of(uri);
            match catch_unwind(AssertUnwindSafe(|| Analysis::load(&path, &overlay))) {
                Ok(Ok(a)) => {
                    let a = Rc::new(a);
                    if a.parsed(FileId(0)) {
                        self.parsed.insert(uri.clone(), a.clone());
                    }
                    self.analyses.insert(uri.clone(), a);
                }
                Ok(Err(e)) => eprintln!("recspec lsp: {e}"),
                Err(_) => eprintln!("recspec lsp: internal error analysing {uri}"),
            }
        }
        let mut by_file: BTreeMap<Url, Vec<lsp::Diagnostic>> = BTreeMap::new();
        for uri in self.docs.keys() {
            by_file.entry(uri.clone()).or_default();
        }
        for (root, a) in &self.analyses {
            for d in &a.checked.diagnostics {
                let uris = Uris { root, open: &self.open };
                if let Some((file, diagnostic)) = convert::diagnostic(a, &uris, d) {
                    let list = by_file.entry(file).or_default();
                    if !list.contains(&diagnostic) {
                        list.push(diagnostic);
                    }
                }
            }
        }
        let stale: Vec<Url> = self.published.iter().filter(|u| !by_file.contains_key(*u)).cloned().collect();
        for uri in stale {
            by_file.insert(uri, vec![]);
        }
        self.published.clear();
        for (uri, diagnostics) in by_file {
            if !diagnostics.is_empty() {
                self.published.insert(uri.clone());
            }
            let params = lsp::PublishDiagnosticsParams { uri, diagnostics, version: None };
            self.send(Notification::new(lsp::notification::PublishDiagnostics::METHOD.to_string(), params).into())?;
        }
        Ok(())
    }

    /// The analysis to answer a request about `uri` from, and the file it is there: the
    /// document's own, or for a block library the analysis of an open spec that imports it (so
    /// its blocks have applications to show).
    fn analysis<'s>(&'s self, uri: &'s Url) -> Option<(&'s Analysis, &'s Url, FileId)> {
        let own = self.analyses.get(uri).map(|a| (a.as_ref(), uri, FileId(0)));
        if own.is_some_and(|(a, _, _)| a.has_model()) {
            return own;
        }
        let path = convert::canonical(convert::path_of(uri));
        let importer = self
            .analyses
            .iter()
            .filter(|(_, a)| a.has_model())
            .find_map(|(root, a)| a.file(&path).map(|file| (a.as_ref(), root, file)));
        importer.or(own)
    }

    fn position<'s>(
        &'s self,
        doc: &'s lsp::TextDocumentPositionParams,
    ) -> Option<(&'s Analysis, &'s Url, FileId, u32)> {
        let (a, root, file) = self.analysis(&doc.text_document.uri)?;
        let offset = convert::offset(&a.spec.sources.get(file).text, doc.position);
        Some((a, root, file, offset as u32))
    }

    fn hover(&self, p: lsp::HoverParams) -> Option<lsp::Hover> {
        let (a, _, file, offset) = self.position(&p.text_document_position_params)?;
        let h = a.hover(file, offset)?;
        Some(lsp::Hover {
            contents: lsp::HoverContents::Markup(lsp::MarkupContent {
                kind: lsp::MarkupKind::Markdown,
                value: h.markdown,
            }),
            range: Some(convert::range(a, h.span)),
        })
    }

    fn definition(&self, p: lsp::GotoDefinitionParams) -> Option<lsp::GotoDefinitionResponse> {
        let (a, root, file, offset) = self.position(&p.text_document_position_params)?;
        let span = a.definition(file, offset)?;
        convert::location(a, &Uris { root, open: &self.open }, span).map(lsp::GotoDefinitionResponse::Scalar)
    }

    fn references(&self, p: lsp::ReferenceParams) -> Option<Vec<lsp::Location>> {
        let (a, root, file, offset) = self.position(&p.text_document_position)?;
        let spans = a.references(file, offset, p.context.include_declaration);
        let uris = Uris { root, open: &self.open };
        Some(spans.into_iter().filter_map(|s| convert::location(a, &uris, s)).collect())
    }

    fn completion(&self, p: lsp::CompletionParams) -> Option<lsp::CompletionResponse> {
        let uri = &p.text_document_position.text_document.uri;
        let text = self.docs.get(uri)?;
        let a = self.parsed.get(uri).or_else(|| self.analyses.get(uri))?;
        let offset = convert::offset(text, p.text_document_position.position);
        let items = ide::complete(a, text, offset).into_iter().map(convert::completion).collect();
        Some(lsp::CompletionResponse::Array(items))
    }
}

/// Decodes a request's params, runs `f`, encodes its result.
fn handle<R: lsp::request::Request>(
    req: Request,
    f: impl FnOnce(R::Params) -> R::Result,
) -> Result<serde_json::Value, RequestError> {
    let params: R::Params = serde_json::from_value(req.params)
        .map_err(|e| RequestError(ErrorCode::InvalidParams, format!("bad params for `{}`: {e}", R::METHOD)))?;
    serde_json::to_value(f(params)).map_err(|e| RequestError(ErrorCode::InternalError, e.to_string()))
}

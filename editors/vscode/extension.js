// The recspec extension: starts `recspec lsp` as a language server over stdio for .recspec
// files. Highlighting comes from syntaxes/recspec.tmLanguage.json and needs no server.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("recspec");
  const command = config.get("server.path", "recspec");
  const args = ["lsp", ...config.get("server.extraArgs", [])];
  const serverOptions = {
    run: { command, args },
    debug: { command, args },
  };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "recspec" }, { scheme: "untitled", language: "recspec" }],
  };
  client = new LanguageClient("recspec", "recspec language server", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.commands.registerCommand("recspec.restartServer", () => client.restart()),
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
